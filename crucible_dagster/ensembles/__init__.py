"""Ensembles: voting over several backends' answers, and the ensemble stage."""
