"""Built-in stages. Each registers itself through the ``crucible_dagster.stages`` entry-point group."""
