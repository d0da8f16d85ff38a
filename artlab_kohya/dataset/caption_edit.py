"""Editing caption files safely: pure edits, a diff before writing, atomic writes, a backup of everything.

Bulk caption edits (the guide's "prefix words", a trigger word, replacing or removing tags) are where
a dataset gets damaged without anyone noticing. So every edit here is a pure function from text to text;
`--dry-run` shows a unified diff; a real run first copies every file it will change into
DIR/.artlab-captions/<id>/ (sd-scripts skips hidden folders) and then replaces each file atomically.
`restore` puts the newest backup set back, after backing up what it replaces, so it can be undone too.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomic

__all__ = [
    "BACKUP_DIR",
    "Backup",
    "Change",
    "Edit",
    "apply_edit",
    "diff",
    "list_backups",
    "plan_edit",
    "restore",
    "write_captions",
]

BACKUP_DIR = ".artlab-captions"
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Edit:
    """What to do to each caption line, applied in this order: replace, tags, trigger, prefix, postfix."""

    prefix: str | None = None
    postfix: str | None = None
    replace: tuple[tuple[str, str], ...] = ()
    remove_tags: tuple[str, ...] = ()
    dedupe_tags: bool = False
    trigger: str | None = None
    separator: str = ", "

    @property
    def touches_tags(self) -> bool:
        return bool(self.remove_tags or self.dedupe_tags or self.trigger)


@dataclass(frozen=True)
class Change:
    path: Path
    old: str | None  # None: the file does not exist yet
    new: str


@dataclass(frozen=True)
class Backup:
    id: str
    folder: Path
    command: str
    changed: tuple[str, ...]  # caption files whose previous content is in the backup
    created: tuple[str, ...]  # caption files that did not exist before


def apply_edit(text: str, edit: Edit) -> str:
    """The edited caption. Each non-empty line is edited alike (wildcard captions have several)."""
    ending = "\n" if text.endswith("\n") else ""
    lines = text[: len(text) - len(ending)].split("\n") if text else [""]
    out = [_edit_line(line, edit) if line.strip() or len(lines) == 1 else line for line in lines]
    return "\n".join(out) + ending


def _edit_line(line: str, edit: Edit) -> str:
    line = line.rstrip("\r")
    for old, new in edit.replace:
        line = line.replace(old, new)
    sep = edit.separator
    if edit.touches_tags:
        tags = [t.strip() for t in line.split(sep.strip() or ",")]
        tags = [t for t in tags if t]
        if edit.remove_tags:
            gone = {t.strip().casefold() for t in edit.remove_tags}
            tags = [t for t in tags if t.casefold() not in gone]
        if edit.dedupe_tags:
            first: dict[str, str] = {}
            for tag in tags:
                first.setdefault(tag.casefold(), tag)
            tags = list(first.values())
        if edit.trigger:
            tags = [edit.trigger] + [t for t in tags if t.casefold() != edit.trigger.casefold()]
        line = sep.join(tags)
    if edit.prefix and not line.startswith(edit.prefix):
        line = _join(edit.prefix, line, sep)
    if edit.postfix and not line.endswith(edit.postfix):
        line = _join(line, edit.postfix, sep)
    return line


def _join(left: str, right: str, sep: str) -> str:
    """left + sep + right; as written when either side already brings its own separator or space."""
    if not left or not right:
        return left + right
    mark = sep.strip()
    if left[-1].isspace() or right[0].isspace() or (mark and (left.endswith(mark) or right.startswith(mark))):
        return left + right
    return left + sep + right


def plan_edit(
    folder: str | os.PathLike[str], edit: Edit, caption_extension: str = ".txt"
) -> tuple[list[Change], list[str]]:
    """The caption files in FOLDER (not its subfolders) that the edit changes, with old and new text,
    and the names of those left alone because they are not UTF-8 (sd-scripts cannot read them either)."""
    changes, unreadable = [], []
    for path in sorted(Path(folder).glob(f"*{caption_extension}")):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            old = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            unreadable.append(path.name)
            continue
        new = apply_edit(old, edit)
        if new != old:
            changes.append(Change(path, old, new))
    return changes, unreadable


def diff(change: Change) -> str:
    """A unified diff of one change, named after the file."""
    old = (change.old or "").splitlines(keepends=True)
    new = change.new.splitlines(keepends=True)
    name = change.path.name
    lines = difflib.unified_diff(old, new, f"a/{name}" if change.old is not None else "/dev/null", f"b/{name}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def write_captions(folder: str | os.PathLike[str], texts: Mapping[Path, str], command: str) -> Backup | None:
    """Back up, then atomically write each file's new text; the backup set, or None if nothing changed."""
    root = Path(folder)
    todo = {p: t for p, t in texts.items() if not (p.is_file() and p.read_bytes() == t.encode())}
    if not todo:
        return None
    backup = _new_backup(root, command, todo)
    for path, text in todo.items():
        write_atomic(path, text)
    return backup


def _new_backup(root: Path, command: str, paths: Iterable[Path]) -> Backup:
    """Copy the current content of `paths` into a fresh backup set, fsynced before anything is replaced."""
    base = root / BACKUP_DIR
    base.mkdir(exist_ok=True)
    while True:
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000 // 1000:06d}"
        folder = base / stamp
        try:
            folder.mkdir()
            break
        except FileExistsError:
            time.sleep(0.001)
    changed, created = [], []
    for path in paths:
        if path.is_file():
            shutil.copy2(path, folder / path.name)
            _fsync(folder / path.name)
            changed.append(path.name)
        else:
            created.append(path.name)
    manifest = {"command": command, "changed": sorted(changed), "created": sorted(created)}
    write_atomic(folder / _MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return Backup(stamp, folder, command, tuple(sorted(changed)), tuple(sorted(created)))


def list_backups(folder: str | os.PathLike[str]) -> list[Backup]:
    """Backup sets of FOLDER, oldest first."""
    base = Path(folder) / BACKUP_DIR
    out = []
    for sub in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            manifest = json.loads((sub / _MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unfinished set (interrupted before its manifest): nothing was replaced yet
        out.append(Backup(sub.name, sub, manifest["command"], tuple(manifest["changed"]), tuple(manifest["created"])))
    return out


def restore(folder: str | os.PathLike[str], backup_id: str | None = None) -> tuple[Backup, Backup | None]:
    """Undo one backup set (default: the newest): changed files get their old text back, created files go.

    What is replaced or removed is itself backed up first, so a restore can be restored. Returns the set
    restored and the new set holding what was there before.
    """
    root = Path(folder)
    backups = list_backups(root)
    if not backups:
        raise FileNotFoundError(f"no caption backups in {root / BACKUP_DIR}")
    chosen = next((b for b in backups if b.id == backup_id), None) if backup_id else backups[-1]
    if chosen is None:
        known = ", ".join(b.id for b in backups)
        raise FileNotFoundError(f"no caption backup {backup_id!r} in {root} (known: {known})")
    affected = [root / n for n in chosen.changed + chosen.created]
    undo = _new_backup(root, f"restore {chosen.id}", affected) if affected else None
    for name in chosen.changed:
        write_atomic(root / name, (chosen.folder / name).read_bytes())
    for name in chosen.created:
        (root / name).unlink(missing_ok=True)
    return chosen, undo


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
