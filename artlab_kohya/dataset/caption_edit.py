"""Editing caption files safely: pure edits, a diff before writing, atomic writes, a backup of everything.

Bulk caption edits (the guide's "prefix words", a trigger word, replacing or removing tags) are where
a dataset gets damaged without anyone noticing. So every edit here is a pure function from text to text;
`--dry-run` shows a unified diff; a real run first copies every file it will change into
DIR/.artlab-captions/<id>/ (sd-scripts skips hidden folders) and then replaces each file atomically.
`restore` puts the newest backup set back, after backing up what it replaces, so it can be undone too.

Writers of one folder take its lock (DIR/.artlab-captions/lock), so two edits at once cannot read the same
captions and each write its own version: the second is refused. A restore is journaled: the copy of what it
replaces is complete (pending.json) before the first file changes, and that set's manifest is written last,
so a restore cut off at any point is finished, not repeated, by the next `restore`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArtlabError
from ..files import stale_temps, write_atomic

__all__ = [
    "BACKUP_DIR",
    "Backup",
    "CaptionError",
    "Change",
    "Edit",
    "EditResult",
    "apply_edit",
    "check_caption_extension",
    "diff",
    "edit_captions",
    "folder_lock",
    "list_backups",
    "plan_edit",
    "restore",
    "write_captions",
]

BACKUP_DIR = ".artlab-captions"
_MANIFEST = "manifest.json"
_PENDING = "pending.json"  # a restore's undo set, complete, while the restore is being applied
_LOCK = "lock"

# The spec's rule for caption_extension (spec.model): a dot, then letters, digits or "_". sd-scripts appends
# the extension to the image's name without adding a dot, so "txt" would mean "img001txt"; and "" would make
# every file in the folder a caption.
CAPTION_EXTENSION = re.compile(r"^\.[A-Za-z0-9_-]+$")


class CaptionError(ArtlabError):
    """A caption change that cannot be made or finished; one line for the user, saying what was changed."""


def check_caption_extension(extension: str) -> str:
    """The extension, if sd-scripts would read captions by it; ValueError (one line) otherwise."""
    if CAPTION_EXTENSION.fullmatch(extension):
        return extension
    if not extension:
        raise ValueError("an empty caption extension would make every file in the folder a caption; e.g. .txt")
    if CAPTION_EXTENSION.fullmatch("." + extension):
        raise ValueError(
            f"{extension!r} has no leading dot: sd-scripts would look for 'img001{extension}'; write '.{extension}'"
        )
    raise ValueError(
        f"{extension!r}: a caption extension is a dot and letters, digits, '_' or '-', e.g. .txt or .caption"
    )


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
    and the names of those left alone because they are not UTF-8 (sd-scripts cannot read them either).

    Only regular files count (sd-scripts passes over a folder, FIFO or broken link under a caption name).
    A caption file that cannot be read, or a folder that cannot be listed, is a CaptionError.
    """
    root = Path(folder)
    ext = check_caption_extension(caption_extension)
    try:
        names = sorted(n for n in os.listdir(root) if n.endswith(ext) and not n.startswith("."))
    except OSError as exc:
        raise CaptionError(f"{root} cannot be read: {exc.strerror or exc}; nothing was changed") from None
    changes, not_utf8, failed = [], [], []
    for name in names:
        path = root / name
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                continue
            old = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            not_utf8.append(name)
            continue
        except OSError as exc:  # a loop or broken link is no caption; one that cannot be read or looked at is
            if isinstance(exc, PermissionError) or os.path.isfile(path):
                failed.append(f"{name} ({exc.strerror or exc})")
            continue
        new = apply_edit(old, edit)
        if new != old:
            changes.append(Change(path, old, new))
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        raise CaptionError(f"cannot read {len(failed)} caption file(s) in {root}: {shown}; nothing was changed")
    return changes, not_utf8


def diff(change: Change) -> str:
    """A unified diff of one change, named after the file."""
    old = (change.old or "").splitlines(keepends=True)
    new = change.new.splitlines(keepends=True)
    name = change.path.name
    lines = difflib.unified_diff(old, new, f"a/{name}" if change.old is not None else "/dev/null", f"b/{name}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass(frozen=True)
class EditResult:
    changes: list[Change]
    not_utf8: list[str]  # caption files left alone
    backup: Backup | None  # None: a dry run, or nothing changed


def edit_captions(
    folder: str | os.PathLike[str],
    edit: Edit,
    caption_extension: str = ".txt",
    command: str = "caption edit",
    *,
    dry_run: bool = False,
) -> EditResult:
    """`caption edit`: plan the edit and (unless dry_run) write it, holding the folder's lock from the
    first read to the last write, so that a concurrent edit is refused rather than silently lost."""
    root = Path(folder)
    if dry_run:
        return EditResult(*plan_edit(root, edit, caption_extension), None)
    with folder_lock(root):
        changes, not_utf8 = plan_edit(root, edit, caption_extension)
        backup = _write(root, {c.path: c.new for c in changes}, command)
    return EditResult(changes, not_utf8, backup)


def write_captions(
    folder: str | os.PathLike[str], texts: Mapping[Path, str], command: str, *, wait: float = 30.0
) -> Backup | None:
    """Back up, then atomically write each file's new text; the backup set, or None if nothing changed.

    Takes the folder's lock, waiting up to `wait` seconds for another writer to finish.
    """
    root = Path(folder)
    with folder_lock(root, wait=wait):
        return _write(root, texts, command)


def _write(root: Path, texts: Mapping[Path, str], command: str) -> Backup | None:
    _refuse_unfinished(root)
    try:
        todo = {p: t for p, t in texts.items() if not (p.is_file() and p.read_bytes() == t.encode())}
    except OSError as exc:
        raise CaptionError(f"cannot read {exc.filename}: {exc.strerror or exc}; nothing was changed") from None
    if not todo:
        return None
    for temp in stale_temps(root, (p.name for p in todo)):
        temp.unlink(missing_ok=True)
    backup = _new_backup(root, command, todo)
    for done, (path, text) in enumerate(todo.items()):
        try:
            write_atomic(path, text)
        except OSError as exc:
            if not done:  # e.g. a read-only folder: the backup of an edit that changed nothing goes too
                shutil.rmtree(backup.folder, ignore_errors=True)
                raise CaptionError(f"cannot write {path}: {exc.strerror or exc}; nothing was changed") from None
            raise CaptionError(
                f"cannot write {path}: {exc.strerror or exc}; {done} of {len(todo)} file(s) were changed before "
                f"it, and `artlab-kohya caption restore {root}` puts them back (backup {backup.id})"
            ) from None
    return backup


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], *, wait: float = 0.0) -> Iterator[None]:
    """Hold FOLDER's caption lock: an advisory lock on DIR/.artlab-captions/lock, released by the system
    when its holder ends, however it ends (no stale lock file to clean up). CaptionError when another
    process still holds it after `wait` seconds."""
    base = Path(folder) / BACKUP_DIR
    try:
        base.mkdir(exist_ok=True)
        fd = os.open(base / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CaptionError(f"cannot write in {base}: {exc.strerror or exc}; nothing was changed") from None
    try:
        deadline = time.monotonic() + wait
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() if hasattr(os, "pread") else ""
                raise CaptionError(
                    f"another caption edit, restore or captioning run{f' (process {holder})' if holder else ''} "
                    f"is changing the captions in {folder}; nothing was changed: run this again when it has finished"
                )
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _new_backup(root: Path, command: str, paths: Iterable[Path], *, manifest: str = _MANIFEST, **extra: str) -> Backup:
    """Copy the current content of `paths` into a fresh backup set, fsynced, then write its `manifest`.

    For an edit the manifest is the set's own: it exists before any caption changes, so even an edit cut off
    half-way can be restored. A restore passes pending.json instead (see restore). A set without either was
    cut off while copying, before anything changed: the next writer removes it.
    """
    base = root / BACKUP_DIR
    try:
        base.mkdir(exist_ok=True)
        while True:
            stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000 // 1000:06d}"
            folder = base / stamp
            try:
                folder.mkdir()
                break
            except FileExistsError:
                time.sleep(0.001)
    except OSError as exc:
        raise CaptionError(f"cannot write the backup in {base}: {exc.strerror or exc}; nothing was changed") from None
    changed, created = [], []
    try:
        for path in paths:
            if path.is_file():
                shutil.copy2(path, folder / path.name)
                _fsync(folder / path.name)
                changed.append(path.name)
            else:
                created.append(path.name)
        data = {"command": command, "changed": sorted(changed), "created": sorted(created), **extra}
        write_atomic(folder / manifest, json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        what = exc.filename or folder
        raise CaptionError(f"cannot back up to {what}: {exc.strerror or exc}; nothing was changed") from None
    return Backup(stamp, folder, command, tuple(sorted(changed)), tuple(sorted(created)))


def list_backups(folder: str | os.PathLike[str]) -> list[Backup]:
    """Complete backup sets of FOLDER, oldest first."""
    out = []
    for sub in _sets(Path(folder)):
        backup = _read_set(sub, _MANIFEST)
        if backup is not None:  # else: the lock file, or a set that is not complete (see _new_backup)
            out.append(backup)
    return out


def _sets(root: Path) -> list[Path]:
    """The entries of ROOT's backup area, in order (set folders are named by time); none if it is absent."""
    base = root / BACKUP_DIR
    try:
        return sorted(base.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CaptionError(f"{base} cannot be read: {exc.strerror or exc}") from None


def _read_set(sub: Path, manifest: str) -> Backup | None:
    try:
        data = json.loads((sub / manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Backup(sub.name, sub, data["command"], tuple(data["changed"]), tuple(data["created"]))


def restore(folder: str | os.PathLike[str], backup_id: str | None = None) -> tuple[Backup, Backup | None]:
    """Undo one backup set (default: the newest): changed files get their old text back, created files go.

    What is replaced or removed is itself backed up first, so a restore can be restored. Returns the set
    restored and the new set holding what was there before.

    Crash-safe: the new set is complete (pending.json) before the first caption changes, and its manifest is
    written last. A restore cut off in between is finished by the next call, which then returns that restore
    instead of starting another one (re-running it from the start would back up the half-restored files and
    make the undo lose the edit).
    """
    root = Path(folder)
    with folder_lock(root):
        finished = _finish_unfinished(root)
        backups = list_backups(root)
        if finished is not None and backup_id in (None, finished[0].id):
            return finished
        if not backups:
            raise FileNotFoundError(f"no caption backups in {root / BACKUP_DIR}")
        chosen = next((b for b in backups if b.id == backup_id), None) if backup_id else backups[-1]
        if chosen is None:
            known = ", ".join(b.id for b in backups)
            raise FileNotFoundError(f"no caption backup {backup_id!r} in {root} (known: {known})")
        affected = [root / n for n in chosen.changed + chosen.created]
        if not affected:
            return chosen, None
        undo = _new_backup(root, f"restore {chosen.id}", affected, manifest=_PENDING, restores=chosen.id)
        _apply(root, chosen, undo)
        return chosen, undo


def _apply(root: Path, chosen: Backup, undo: Backup, *, fresh: bool = True) -> None:
    """Put `chosen` back, then make `undo` a complete set. Safe to repeat from the start at any point.

    A fresh restore that fails before its first change (a read-only folder) removes `undo` again.
    """
    name, started = "", False
    try:
        for temp in stale_temps(root, chosen.changed + chosen.created):
            temp.unlink(missing_ok=True)
        for name in chosen.changed:
            write_atomic(root / name, (chosen.folder / name).read_bytes())
            started = True
        for name in chosen.created:
            (root / name).unlink(missing_ok=True)
            started = True
        name = _MANIFEST
        os.replace(undo.folder / _PENDING, undo.folder / _MANIFEST)  # written last: the restore is done
    except OSError as exc:
        if fresh and not started:
            shutil.rmtree(undo.folder, ignore_errors=True)
            raise CaptionError(
                f"cannot restore {chosen.id}: {name}: {exc.strerror or exc}; nothing was changed"
            ) from None
        raise CaptionError(
            f"the restore of {chosen.id} stopped at {name}: {exc.strerror or exc}; run `artlab-kohya caption "
            f"restore {root}` again to finish it"
        ) from None


def _unfinished(root: Path) -> tuple[list[Path], list[Path]]:
    """(sets of a restore cut off while applying, sets cut off while copying) in FOLDER's backup area."""
    pending: list[Path] = []
    partial: list[Path] = []
    for sub in _sets(root):
        if not sub.is_dir() or (sub / _MANIFEST).is_file():
            continue
        (pending if (sub / _PENDING).is_file() else partial).append(sub)
    return pending, partial


def _finish_unfinished(root: Path) -> tuple[Backup, Backup] | None:
    """Finish a restore that was cut off (the newest, if several), and remove sets cut off while copying."""
    pending, partial = _unfinished(root)
    for sub in partial:
        shutil.rmtree(sub, ignore_errors=True)
    finished = None
    for sub in pending:
        undo = _read_set(sub, _PENDING)
        restores = json.loads((sub / _PENDING).read_text(encoding="utf-8")).get("restores", "")
        chosen = _read_set(root / BACKUP_DIR / restores, _MANIFEST) if restores else None
        if undo is None or chosen is None:
            raise CaptionError(
                f"an unfinished restore in {sub} cannot be finished: the backup it restores ({restores or '?'}) "
                "is gone; move that folder away to go on"
            )
        _apply(root, chosen, undo, fresh=False)
        finished = (chosen, undo)
    return finished


def _refuse_unfinished(root: Path) -> None:
    pending, partial = _unfinished(root)
    for sub in partial:
        shutil.rmtree(sub, ignore_errors=True)
    if pending:
        raise CaptionError(
            f"a restore of the captions in {root} was cut off; nothing was changed: run `artlab-kohya caption "
            f"restore {root}` to finish it first"
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
