"""Racing: evaluate configurations on blocks (samples, seeds, folds) round by round and drop the
ones shown worse, so a sweep stops paying for configurations that cannot win (issue 25)."""
