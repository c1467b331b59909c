"""Parameter grids x seeds as trials: expanding, running, comparing, planning, reporting."""
