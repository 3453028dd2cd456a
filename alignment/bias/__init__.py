"""Bias analysis with attitude scales (ChiMed-GPT): scale files (``scale``), answers parsed to
options (``answers``), respondents (``respondents``), scores and comparisons (``scoring``); the
``bias`` stage is ``alignment/stages/bias.py``. Demo scales: ``alignment/bias/scales/``."""
