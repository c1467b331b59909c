"""Recognising pandas tables without importing pandas.

A DataFrame or Series can only exist once something imported pandas, so a stage that merely
asks "is this a table?" reads ``sys.modules`` instead of paying pandas' import (about half a
second, a sixth of a small ``dagster job execute``) on runs that never touch a table.
"""

from __future__ import annotations

import sys
from typing import Any


def is_dataframe(value: Any) -> bool:
    """True when ``value`` is a pandas DataFrame; never imports pandas."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def is_series(value: Any) -> bool:
    """True when ``value`` is a pandas Series; never imports pandas."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.Series)
