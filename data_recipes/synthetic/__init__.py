"""The synthetic medical world and the demo corpus generator.

* ``world``: departments and conditions (zh/en), loaded from ``data/*.yaml`` by ``tables`` (schema);
  ``lexicon``: find their names in text (the one matcher, also the local judge's).
* ``answers``: patients' messages and answers in four styles (doctor, distilled, hybrid, weak).
* ``consultations``: MedDialog raw-text consultations; ``corpus_records``: the other formats.
* ``generate``: ``write_corpus`` (every file of the demo corpus) and the re-exported helpers.
"""
