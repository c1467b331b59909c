"""Celery: the app the workers run, its settings, and starting and stopping the workers."""
