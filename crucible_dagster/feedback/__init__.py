"""Production feedback: read (``sources``), validated, redacted and sampled (``ingest``), kept as
a table (``table``), judged (``quality``) and exported (``export``); the ``feedback`` stage."""
