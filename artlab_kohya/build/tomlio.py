"""TOML in and out: tomlkit writes (it keeps `[[datasets.subsets]]` tables readable), the
standard library reads (tomli before Python 3.11)."""

from __future__ import annotations

import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def dumps(doc: dict[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps(doc)


def loads(text: str) -> dict[str, Any]:
    return tomllib.loads(text)
