"""Reports and sidecars as strict JSON, written whole or not at all.

Python's ``json`` writes ``NaN`` and ``Infinity`` for non-finite floats, which strict parsers (browsers'
``JSON.parse``, jq, most non-Python tools) reject: an all-black pair has undefined metrics, and the report must
still load. Non-finite numbers become ``null``; numpy scalars and arrays become plain numbers and lists.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def strict(value: Any) -> Any:  # noqa: ANN401 - any JSON-like tree
    """``value`` with non-finite floats as None and numpy types as Python ones."""
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, indent: int | None = 1) -> str:  # noqa: ANN401
    return json.dumps(strict(value), indent=indent, allow_nan=False)


def write_json(path: str | Path, value: Any, indent: int | None = 1) -> Path:  # noqa: ANN401
    """Atomic: a reader never sees half a file, and an interrupted write leaves the previous one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(dumps(value, indent) + "\n")
    os.replace(tmp, path)
    return path
