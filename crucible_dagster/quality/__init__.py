"""Quality: quality targets, the regression gate against an accepted baseline, and the metric trend."""
