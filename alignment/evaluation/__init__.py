"""Evaluation that cannot be fooled: ground-truth clinical metrics first (no LLM), then LLM
referees through ``judges/`` (transcripts, cache, statuses).

    cases.py        eval sets (data_recipes.eval_cases schema) from a data stage or Parquet files
    clinical.py     diagnosis / department accuracy, asking, red flags, length (no LLM)
    referee.py      HuatuoGPT's referee protocol: per-category scores, performance ratio, W/T/L
    leaderboard.py  Bradley-Terry strengths from every pairwise referee outcome
    generations.py  model outputs, cached by content (model digest + case + sampling + seed)
    config.py       the ``medalign eval`` config
    run.py          many models on many eval sets in one run
    report.py       report.json and report.html
    patient.py      multi-turn conversations with a simulated patient (conversation_scores.py scores them)
    healthbench.py  rubric grading in HealthBench's format (demo_rubric.py: the demo world's rubrics)

``medalign eval CONFIG`` (``alignment/evaluation/cli.py``) and the ``eval`` stage
(``alignment/stages/eval.py``) are thin wrappers over :func:`alignment.evaluation.run.run_evaluation`.
"""
