"""The original's reliability toolkit: ensembles, hedged requests, fairness, guardrail settings."""
