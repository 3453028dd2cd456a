"""LLM judges for medalign: pairwise judging in both orders with complete, hash-chained
transcripts, strict parsers, a cache, a budget, ranking into reward tuples, audit statistics, and
a local OpenAI-compatible rubric server.

Entry points: :func:`judges.api.judge_pairs` (the API other packages use), the ``judge`` stage
(:mod:`judges.stage`), ``medalign judge run|serve`` (:mod:`judges.cli`) and ``medalign audit
verify|summary|list|show|view`` (:mod:`judges.audit_cli`, the HTML workbench in
:mod:`judges.audit_view`). Never imports ray.
"""
