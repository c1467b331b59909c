"""Guardrails: the guardrail settings (profiles, checkers) and the guardrails stage."""
