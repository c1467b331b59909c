"""The experiment language: the IR, loading files with located problems, option schemas.

Pure data and its rules: nothing here runs a stage, and nothing imports dagster.
"""
