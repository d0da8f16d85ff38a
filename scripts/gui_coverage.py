"""How much of each Kohya GUI LoRA preset a spec holds in first-class fields (not kohya.extra_args or
network.args, which pass a value on without knowing it), and why each other setting is not one.

    .venv/bin/python scripts/gui_coverage.py [--before REV] [--write docs/gui_coverage.md] [PRESET.json ...]

A preset's settings are its fields with a value (not empty, 0 or false) that reach sd-scripts: GUI-only fields
and other model families' fields are left out, and `additional_parameters` counts as each of its arguments
(`--log_prefix`). A setting is first-class when spec/gui.py maps it to a spec path that the schema has.
--before REV also counts against the schema at that commit (its artlab_kohya package is read from git), for the
same mapping. Every GUI field that is not first-class must say why (GuiField.reason): a setting without a
reason makes the script exit 1. --write writes the tables as the document the README links to
(tests/test_gui_coverage.py checks that it is current).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artlab_kohya.spec.gui import (  # noqa: E402
    BY_NAME,
    FIELDS,
    GUI_ONLY,
    OTHER_FAMILY,
    PASSED_ON,
    argument_to,
    arguments,
    coerce,
    renamed,
)

PRESETS = ROOT / "tests" / "data" / "gui_presets"
DOC = ROOT / "docs" / "gui_coverage.md"
COMMAND = "scripts/gui_coverage.py --write docs/gui_coverage.md"
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
    """The preset's settings: GUI field names, and `--key` for each argument of additional_parameters."""
    data, _, _ = renamed(config)
    found = []
    for name, value in data.items():
        field = BY_NAME.get(name)
        if field is None or field.why.startswith((GUI_ONLY, OTHER_FAMILY)):
            continue
        if coerce(field, value) in (None, "", False, 0, []):
            continue
        if name == "additional_parameters":
            found += [f"--{key}" for key, _ in arguments(str(value))]
        else:
            found.append(name)
    return found


def goes_to(name: str) -> str:
    """The spec path a setting goes to ("" for none)."""
    return argument_to(name[2:]) if name.startswith("--") else BY_NAME[name].to


def first_class(name: str, paths: set[str]) -> bool:
    to = goes_to(name)
    return bool(to) and not to.startswith(PASSED_ON) and to in paths


def reason(name: str) -> str:
    """Why a setting is not first-class; an argument of additional_parameters takes the reason of the GUI field
    that passes the same sd-scripts argument."""
    if not name.startswith("--"):
        return BY_NAME[name].reason
    same = [f for f in FIELDS if f.to == goes_to(name)]
    return same[0].reason if same else ""


def preset_table(files: list[Path], now: set[str], before: set[str] | None) -> tuple[list[str], Counter[str]]:
    """The per-preset counts (markdown lines) and how many presets set each setting."""
    lines = [f"| preset | settings | first-class{' before' if before else ''} |" + (" after |" if before else "")]
    lines.append("|---|---:|---:|" + ("---:|" if before else ""))
    totals, used = [0, 0, 0], Counter[str]()
    for path in files:
        config = json.loads(path.read_text(encoding="utf-8"))
        names = settings(config)
        used.update(set(names))
        counts = [len(names), sum(first_class(n, now) for n in names)]
        if before is not None:
            counts.insert(1, sum(first_class(n, before) for n in names))
        cells = [f"{c} ({100 * c / counts[0]:.0f}%)" for c in counts[1:]]
        lines.append(f"| {path.stem} | {counts[0]} | " + " | ".join(cells) + " |")
        for i, c in enumerate(counts):
            totals[i] += c
    cells = [f"{c} ({100 * c / totals[0]:.0f}%)" for c in totals[1 : 3 if before is not None else 2]]
    lines.append(f"| all | {totals[0]} | " + " | ".join(cells) + " |")
    return lines, used


def reason_table(used: Counter[str], now: set[str]) -> tuple[list[str], list[str]]:
    """Every GUI field (and preset argument) that is not first-class, with its reason; and those without one."""
    rows = [n for n in used if not first_class(n, now)]
    rows += [f.name for f in FIELDS if f.name not in used and not first_class(f.name, now)]
    rows.sort(key=lambda n: (-used[n], n.lower()))
    lines = ["| setting | presets | goes to | why it is not a spec field |", "|---|---:|---|---|"]
    others = [n for n in rows if BY_NAME.get(n) and BY_NAME[n].why == OTHER_FAMILY]
    for name in rows:
        if name in others:
            continue
        where = goes_to(name)
        cell = f"`{where}`" if where else "nothing"
        lines.append(f"| `{name}` | {used[name]} | {cell} | {reason(name) or '**no reason given**'} |")
    if others:
        group = f"{len(others)} fields of other families (`hunyuan_*`, `anima_*`, `lumina_*`)"
        lines.append(f"| {group} | {sum(used[n] for n in others)} | nothing | {OTHER_FAMILY} |")
    return lines, [n for n in rows if not reason(n)]


def _summary(used: Counter[str], now: set[str]) -> str:
    rest = sorted((n for n in used if not first_class(n, now)), key=lambda n: (-used[n], n))
    if not rest:
        return "Every setting the presets use is a first-class spec field."
    named = ", ".join(f"`{n}` ({used[n]})" for n in rest)
    return f"The presets' settings that are not first-class, with the presets that set them: {named}."


def document(files: list[Path]) -> tuple[str, list[str]]:
    """The markdown the README links to, and the settings that lack a reason."""
    now = schema_paths(ROOT)
    counts, used = preset_table(files, now, None)
    reasons, missing = reason_table(used, now)
    text = "\n".join(
        [
            "# Kohya GUI settings: first-class or passed on",
            "",
            f"Written by `{COMMAND}`; a test fails when it is out of date.",
            "",
            "The GUI's own LoRA presets (tests/data/gui_presets, from bmaltais/kohya_ss `presets/lora/`, those for "
            "the families artlab-kohya trains): the settings each one uses (fields with a value that reach "
            "sd-scripts; each argument of `additional_parameters` counts on its own) and how many of them "
            "`import-gui` turns into first-class spec fields, validated and documented in the README's spec "
            "reference.",
            "",
            *counts,
            "",
            "Every GUI field that is not a first-class spec field, with the number of presets that set it and why "
            "it is not one. `kohya.extra_args` and `network.args` pass a value on to sd-scripts unchanged (checked "
            "against its argument surface, but not validated as a field); `nothing` means the spec does not take "
            "it, and `import-gui` lists it at the top of the spec with this reason.",
            "",
            *reasons,
            "",
            _summary(used, now),
            "",
        ]
    )
    return text, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REV", help="also count against the spec schema at this commit")
    parser.add_argument("--write", metavar="FILE", type=Path, help="write the tables as markdown to FILE")
    parser.add_argument("presets", nargs="*", type=Path)
    args = parser.parse_args(argv)
    files = args.presets or sorted(PRESETS.glob("*.json"))
    now = schema_paths(ROOT)
    before = paths_at(args.before) if args.before else None
    counts, used = preset_table(files, now, before)
    reasons, missing = reason_table(used, now)
    print("\n".join(counts) + "\n\n" + "\n".join(reasons))
    if args.write:
        args.write.write_text(document(files)[0], encoding="utf-8")
        print(f"wrote {args.write}")
    if missing:
        print(f"no reason given for: {', '.join(missing)} (say why in spec/gui.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
