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
    patient.py      conversations with a simulated patient (conversation_scores.py scores them by ground truth)
    multi_turn.py   the multi-turn section: every model's conversations, scores, paired differences, referee
    healthbench.py  rubric grading in HealthBench's format (healthbench_grader.py: the grader's prompt and reply rule)
    rubric_grades.py the rubric section: every model's answers graded, by axis and theme, paired differences
    judge_calls.py  patient and grader calls through the judges engine (transcripts, cache, budget)

The rules the metrics apply (asks a question, hedges, which condition a reply commits to, right
condition / department) are the project's one implementation in
``data_recipes/synthetic/clinical_rules.py``; case cards and the demo rubrics are written with the
eval sets (``data_recipes/synthetic/case_cards.py``, ``rubrics.py``).

``medalign eval CONFIG`` (``alignment/evaluation/cli.py``) and the ``eval`` stage
(``alignment/stages/eval.py``) are thin wrappers over :func:`alignment.evaluation.run.run_evaluation`.
"""
