"""How much of each Kohya GUI LoRA preset a spec holds in first-class fields (not kohya.extra_args or
network.args, which pass a value on without knowing it).

    .venv/bin/python scripts/gui_coverage.py [--before REV] [PRESET.json ...]

A preset's settings are its fields with a value (not empty, 0 or false) that reach sd-scripts: GUI-only fields
and other model families' fields are left out. A setting is first-class when spec/gui.py maps it to a spec path
that the schema has. --before REV also counts against the schema at that commit (its artlab_kohya package is
read from git), for the same mapping.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artlab_kohya.spec.gui import BY_NAME, GUI_ONLY, OTHER_FAMILY, coerce, renamed  # noqa: E402

PRESETS = ROOT / "tests" / "data" / "gui_presets"
_PATHS = (
    "import json, sys; sys.path.insert(0, sys.argv[1]); from artlab_kohya.spec.reference import field_docs; "
    "print(json.dumps([d.path for d in field_docs()]))"
)


def schema_paths(package_root: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-c", _PATHS, str(package_root)], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def paths_at(rev: str) -> set[str]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "artlab_kohya"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        return schema_paths(Path(tmp))


def settings(config: dict) -> list[str]:
    data, _, _ = renamed(config)
    found = []
    for name, value in data.items():
        field = BY_NAME.get(name)
        if field is None or field.why.startswith((GUI_ONLY, OTHER_FAMILY)):
            continue
        if coerce(field, value) in (None, "", False, 0, []):
            continue
        found.append(name)
    return found


def first_class(name: str, paths: set[str]) -> bool:
    to = BY_NAME[name].to
    return bool(to) and not to.startswith(("kohya.extra_args", "network.args")) and to in paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REV", help="also count against the spec schema at this commit")
    parser.add_argument("presets", nargs="*", type=Path)
    args = parser.parse_args()
    now = schema_paths(ROOT)
    before = paths_at(args.before) if args.before else None
    files = args.presets or sorted(PRESETS.glob("*.json"))
    head = f"| preset | settings | first-class{' before' if before else ''} |" + (" after |" if before else "")
    print(head)
    print("|---|---:|---:|" + ("---:|" if before else ""))
    totals = [0, 0, 0]
    for path in files:
        config = json.loads(path.read_text(encoding="utf-8"))
        if any(config.get(k) is True for k in ("flux1_checkbox", "sd3_checkbox")):
            continue
        names = settings(config)
        counts = [len(names), sum(first_class(n, now) for n in names)]
        if before is not None:
            counts.insert(1, sum(first_class(n, before) for n in names))
        cells = [f"{c} ({100 * c / counts[0]:.0f}%)" for c in counts[1:]]
        print(f"| {path.stem} | {counts[0]} | " + " | ".join(cells) + " |")
        for i, c in enumerate(counts):
            totals[i] += c
    cells = [f"{c} ({100 * c / totals[0]:.0f}%)" for c in totals[1 : 3 if before is not None else 2]]
    print(f"| all | {totals[0]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
