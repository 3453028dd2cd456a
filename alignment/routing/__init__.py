"""Department routing and doctor recommendation (RealMedDial, MEDI-BERPT).

* :mod:`alignment.routing.metrics`: top-k accuracy, the confusion table per label, the paired
  gain of one model over another, each with a bootstrap interval over cases (pure functions).
* :mod:`alignment.routing.cases`: the data stage's ``cases/`` rows, as texts and labels.
* :mod:`alignment.routing.classifier`: a classification head on any causal-LM backbone
  (``AutoModelForSequenceClassification``), trained alone or together with reply generation on
  the shared backbone (MEDI-BERPT's multitask), and its ranked predictions.
* :mod:`alignment.routing.retrieval`: character n-gram TF-IDF ranking of doctor profiles.
* :mod:`alignment.routing.policy`: whether a generated reply names the right department.

The stages are ``router``, ``routing_gain``, ``policy_routing`` and ``doctor_rank`` in
``alignment/stages/``. (These metrics are local to routing; when the evaluation package lands,
the clinical department metric there and :func:`policy.named_department` should be one.)
"""
