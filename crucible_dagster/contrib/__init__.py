"""Domain stages for the demos and examples. Not part of the core: loaded by dotted path."""
