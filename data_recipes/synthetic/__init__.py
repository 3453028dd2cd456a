"""The synthetic medical world and the demo corpus generator.

* ``world``: departments and conditions (zh/en), validated; ``lexicon``: find their names in text.
* ``answers``: patients' messages and answers in four styles (doctor, distilled, hybrid, weak).
* ``consultations``: MedDialog raw-text consultations; ``corpus_records``: the other formats.
* ``generate``: ``write_corpus`` (every file of the demo corpus) and the re-exported helpers.
"""
