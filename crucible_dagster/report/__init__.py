"""Report rendering (markdown, json, ...): pure functions from a Context to text."""
