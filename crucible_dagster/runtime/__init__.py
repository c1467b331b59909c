"""Running an experiment: Context, stage contract, registry, runner, run records, trace.

Depends on ``experiment`` and ``common``; nothing here imports dagster or ``report``.
"""
