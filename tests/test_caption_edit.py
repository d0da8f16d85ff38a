"""captions.py: pure edits, diffs, atomic writes with backups, restore (and restoring a restore)."""

from __future__ import annotations

import pytest

from artlab_kohya.dataset.caption_edit import (
    BACKUP_DIR,
    Edit,
    apply_edit,
    diff,
    list_backups,
    plan_edit,
    restore,
    write_captions,
)


@pytest.mark.parametrize(
    ("text", "edit", "expected"),
    [
        ("1girl, solo\n", Edit(prefix="sks"), "sks, 1girl, solo\n"),
        ("sks, 1girl", Edit(prefix="sks"), "sks, 1girl"),  # idempotent: already there
        ("a photo of a dog", Edit(prefix="photo of sks "), "photo of sks a photo of a dog"),  # own space: as written
        ("1girl, solo", Edit(postfix="best quality"), "1girl, solo, best quality"),
        ("1girl, solo, smile, Solo", Edit(dedupe_tags=True), "1girl, solo, smile"),
        ("1girl, solo, smile", Edit(remove_tags=("SMILE", "solo")), "1girl"),
        ("a dog, sks, grass", Edit(trigger="sks"), "sks, a dog, grass"),
        ("a dog", Edit(trigger="sks"), "sks, a dog"),
        ("a cat on a mat", Edit(replace=(("cat", "dog"),)), "a dog on a mat"),
        ("", Edit(prefix="sks"), "sks"),
        ("one\ntwo\n", Edit(postfix="x"), "one, x\ntwo, x\n"),  # wildcard captions: every line
        ("a|b", Edit(prefix="p", separator=" | "), "p | a|b"),
    ],
)
def test_apply_edit(text, edit, expected):
    assert apply_edit(text, edit) == expected


def caption_folder(tmp_path):
    folder = tmp_path / "10_sks"
    folder.mkdir()
    (folder / "a.txt").write_text("1girl, solo\n")
    (folder / "b.txt").write_text("sks, 1girl\n")
    (folder / "c.txt").write_bytes(b"caf\xe9")  # not UTF-8
    (folder / "a.png").write_bytes(b"")
    return folder


def test_plan_and_diff(tmp_path):
    folder = caption_folder(tmp_path)
    changes, unreadable = plan_edit(folder, Edit(prefix="sks"))
    assert [c.path.name for c in changes] == ["a.txt"] and unreadable == ["c.txt"]
    assert diff(changes[0]) == "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-1girl, solo\n+sks, 1girl, solo\n"
    assert (folder / "a.txt").read_text() == "1girl, solo\n"  # planning writes nothing


def test_write_backup_restore_and_restore_the_restore(tmp_path):
    folder = caption_folder(tmp_path)
    changes, _ = plan_edit(folder, Edit(trigger="sks"))
    backup = write_captions(folder, {c.path: c.new for c in changes} | {folder / "new.txt": "sks\n"}, "edit")
    assert backup is not None and backup.changed == ("a.txt",) and backup.created == ("new.txt",)
    assert (folder / "a.txt").read_text() == "sks, 1girl, solo\n"
    assert (backup.folder / "a.txt").read_text() == "1girl, solo\n"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # atomic: no temp file left
    restored, undo = restore(folder)
    assert restored.id == backup.id
    assert (folder / "a.txt").read_text() == "1girl, solo\n" and not (folder / "new.txt").exists()
    assert undo is not None and undo.command == f"restore {backup.id}"
    restore(folder)  # the newest set is the restore's own: this undoes the restore
    assert (folder / "a.txt").read_text() == "sks, 1girl, solo\n" and (folder / "new.txt").read_text() == "sks\n"
    assert [b.command for b in list_backups(folder)][:2] == ["edit", f"restore {backup.id}"]
    assert (folder / BACKUP_DIR).is_dir()


def test_nothing_changed_makes_no_backup(tmp_path):
    folder = caption_folder(tmp_path)
    assert write_captions(folder, {folder / "b.txt": "sks, 1girl\n"}, "edit") is None
    assert list_backups(folder) == []
    with pytest.raises(FileNotFoundError, match="no caption backups"):
        restore(folder)


def test_restore_a_named_backup(tmp_path):
    folder = caption_folder(tmp_path)
    first = write_captions(folder, {folder / "a.txt": "one\n"}, "first")
    write_captions(folder, {folder / "a.txt": "two\n"}, "second")
    assert first is not None
    restore(folder, first.id)
    assert (folder / "a.txt").read_text() == "1girl, solo\n"
    with pytest.raises(FileNotFoundError, match="no caption backup 'nope'"):
        restore(folder, "nope")
