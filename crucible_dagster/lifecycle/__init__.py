"""The model lifecycle: train an estimator with checkpoints (``train``), record the run and
register the model on MLflow (``register``), and move a registry alias only when the
regression gate finds the challenger not worse than the champion (``promote``, ``rollback``).

One module per role: ``estimators`` (which class, which of its parameters a setting maps to),
``training_run`` (the record), ``checkpoints`` (skops files, checked before loading),
``training`` (the epoch loop), ``evaluation`` (per-sample scores on the held-out split),
``mlflow_store`` (tracking and registry), ``promotion`` (the gate and the aliases), and the
three stages. MLflow is the optional extra ``mlflow``; training needs scikit-learn and skops.
"""
