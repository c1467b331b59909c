"""Scorers: how a prediction is scored against its reference (one module per family).

The score stage runs one or several of them over the per-sample table; each is named by a
built-in id, an entry point of ``crucible_dagster.scorers`` or a dotted path to a class of your
own (kind-checked before it is called). See ``registry.py`` for the ids and ``base.py`` for the
contract a scorer of your own follows.
"""
