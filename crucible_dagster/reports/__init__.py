"""Reports: the report model, its renderers (markdown, HTML, CSV, JSON, plots), the report stage
and the sweep report."""
