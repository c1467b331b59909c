"""Data drift (``reliability.drift``): recent inputs compared with a reference, feature by
feature (``statistics``), by the ``drift`` stage (``stage``)."""
