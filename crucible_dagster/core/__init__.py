"""The Crucible core: IR, Context, stage contract, registry, runner and trace.

Nothing in this package imports dagster; the Dagster adapter lives in
``crucible_dagster.dagster_plugin`` and depends on this package, never the reverse.
"""
