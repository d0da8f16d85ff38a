"""Matrix values as text: in run names (`dim32`, `unet_lr1e-4`) and in tables. Imports nothing of ours,
so the runs table can show a sweep's values without loading the spec package."""

from __future__ import annotations

import json
import math
import re
from typing import Any


def format_value(value: Any) -> str:
    """A value as it reads in a run name and a table: 1e-4, 5e-5, 0.5, 32, 512x768, true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e5:
            return str(int(value))
        if abs(value) < 1e-2 or abs(value) >= 1e5:
            mantissa, exponent = f"{value:e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    if isinstance(value, list):
        return "x".join(format_value(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def name_part(value: Any) -> str:
    return re.sub(r"[^\w.\-]+", "_", format_value(value)).strip("_") or "_"
