"""dataset/: every finding on real files made here with Pillow (broken ones too), located spec issues,
buckets as plan computes them, the JSON shape."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from artlab_kohya.build.plan import make_plan
from artlab_kohya.dataset import KINDS, check_folder, check_spec_dataset, report_json
from artlab_kohya.spec import load_spec

Image = pytest.importorskip("PIL.Image")

SPEC = """\
model:
  source: sd15
dataset:
  batch_size: {batch}
  subsets:
    - path: {path}
{extra}network:
  type: lora
"""


@pytest.fixture(autouse=True)
def no_tokenizer(tmp_path, monkeypatch):
    """Token counts are estimates unless a test gives a tokenizer: no cache of this machine leaks in."""
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("ARTLAB_KOHYA_TOKENIZERS", raising=False)


def kinds(report, index: int = 0) -> dict[str, list[str]]:
    return report.subsets[index].findings


def messages(report) -> list[str]:
    return [str(i) for i in report.issues]


def test_a_clean_folder_has_no_issues(tmp_path, images):
    images(tmp_path / "10_sks", [(512, 512)] * 12 + [(512, 768)] * 8, caption="sks, a photo")
    report = check_folder(tmp_path / "10_sks", batch_size=2)
    assert report.issues == []
    sub = report.subsets[0]
    assert (sub.images, sub.captioned, sub.input.repeats, sub.input.class_tokens) == (20, 20, 10, "sks")
    assert [(b.resolution, b.images, b.images_x_repeats, b.batches) for b in report.buckets] == [
        ((384, 640), 8, 80, 40),  # 512x768 lands in sd-scripts' 384x640 bucket at 512
        ((512, 512), 12, 120, 60),
    ]
    assert report.tokens == "estimate"


def test_image_counts_follow_the_guide(tmp_path, images):
    images(tmp_path / "9_a", [(512, 512)] * 9, caption="a")
    images(tmp_path / "12_b", [(576, 576)] * 12, caption="b")  # other sizes: no duplicates across folders
    images(tmp_path / "15_c", [(640, 640)] * 15, caption="c")
    report = check_folder(tmp_path)  # kohya's img/ layout: one subset per N_name folder
    assert [s.path.name for s in report.subsets] == ["12_b", "15_c", "9_a"]
    assert [(i.where, i.severity) for i in report.issues] == [
        (str(tmp_path / "12_b"), "warning"),
        (str(tmp_path / "9_a"), "error"),
    ]
    assert "12 image(s); the guide wants at least 10 and 15 or more is better" in messages(report)[0]


def test_no_images_and_missing_folder(tmp_path):
    (tmp_path / "10_x").mkdir()
    (tmp_path / "10_x/a.txt").write_text("x")
    report = check_folder(tmp_path / "10_x")
    assert "no images in" in messages(report)[0] and "No data found" in messages(report)[0]
    assert report.errors
    assert "does not exist" in messages(check_folder(tmp_path / "nope"))[0]


def test_caption_findings(tmp_path, images):
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 16, caption="sks, a photo")
    paths[0].with_suffix(".txt").unlink()  # missing
    paths[1].with_suffix(".txt").write_bytes(b"")  # empty: sd-scripts asserts
    paths[2].with_suffix(".txt").write_text("\nsks, second line")  # blank first line
    paths[3].with_suffix(".txt").write_text("sks, one\nsks, two\n")  # only the first line is read
    paths[4].with_suffix(".txt").write_bytes("sks, caf\xe9".encode("latin-1"))  # not UTF-8
    paths[5].with_suffix(".txt").write_text("a photo of a woman")  # no trigger
    paths[6].with_suffix(".txt").write_text("sks, " + ", ".join(f"tag{i}" for i in range(80)))  # too long
    paths[7].with_suffix(".txt").write_text("SKS_woman")  # case and underscores do not matter
    (folder / "gone.txt").write_text("an orphan")
    (folder / "face_1_2_3_4.png").write_bytes(paths[8].read_bytes() + b"\0")  # sd-scripts' face-crop name
    (folder / "face.txt").write_text("sks, face")  # ... reads this caption: no orphan, no missing
    report = check_folder(folder)
    found = kinds(report)
    assert found["caption_missing"] == ["img000.png"]
    assert found["caption_empty_file"] == ["img001.txt"]
    assert found["caption_blank"] == ["img002.txt"]
    assert found["caption_multiline"] == ["img003.txt"]
    assert found["caption_not_utf8"] == ["img004.txt: byte 8"]
    assert found["trigger_missing"] == ["img005.txt"]
    assert found["caption_too_long"] == ["img006.txt: 311 tokens"]
    assert found["caption_orphan"] == ["gone.txt"]
    assert {k for k in found} == {
        "caption_missing", "caption_empty_file", "caption_blank", "caption_multiline", "caption_not_utf8",
        "trigger_missing", "caption_too_long", "caption_orphan",
    }  # fmt: skip
    assert sorted(i.severity for i in report.errors) == ["error", "error"]  # empty file, not UTF-8
    text = "\n".join(messages(report))
    assert "1 of 17 image(s) have no caption file; they train on the class tokens 'sks': img000.png" in text
    assert "longer than the 75-token window (an estimate: no CLIP tokenizer found)" in text
    assert "lack the class tokens 'sks' (from the folder name): img005.txt" in text


def test_no_captions_at_all_is_the_class_token_style(tmp_path, images):
    images(tmp_path / "10_sks", [(512, 512)] * 15, caption=None)
    assert check_folder(tmp_path / "10_sks").issues == []
    images(tmp_path / "plain", [(512, 512)] * 15, caption=None)  # no N_name, no class tokens
    report = check_folder(tmp_path / "plain")
    assert [i.severity for i in report.issues] == ["error"]
    assert "would train on an empty caption" in messages(report)[0]
    assert check_folder(tmp_path / "plain", class_tokens="sks woman").issues == []


def test_token_window_and_real_counter(tmp_path, images):
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 15, caption="sks, cat")
    paths[0].with_suffix(".txt").write_text("sks, " + "cat " * 100)
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n", encoding="utf-8")
    report = check_folder(folder, tokenizer_dir=tok)
    assert report.tokens == f"CLIP BPE ({tok})"
    assert kinds(report)["caption_too_long"] == ["img000.txt: 104 tokens"]  # s k s , and 100 x cat
    assert "counted with the CLIP tokenizer" in messages(report)[0]
    assert check_folder(folder, tokenizer_dir=tok, max_token_length=150).issues == []


def test_unreadable_mismatched_skipped_and_nested_files(tmp_path, images):
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 15)
    (folder / "cut.png").write_bytes(paths[0].read_bytes()[:20])  # header cut short
    (folder / "notes.png").write_text("not an image at all\n")
    Image.new("RGB", (512, 512)).save(folder / "photo.png", format="JPEG")  # a JPEG named .png
    (folder / "photo.txt").write_text("sks")
    shutil.copy(paths[1], folder / "upper.Png")  # sd-scripts' glob is case-sensitive
    Image.new("RGB", (64, 64)).save(folder / "anim.gif")
    images(folder / "more", [(512, 512)] * 2)
    report = check_folder(folder)
    found = kinds(report)
    assert [e.split(":")[0] for e in found["unreadable"]] == ["cut.png", "notes.png"]
    assert "not an image" in found["unreadable"][1]
    assert found["extension_mismatch"] == ["photo.png: extension says PNG but content is JPEG"]
    assert found["skipped_files"] == ["anim.gif", "upper.Png"]
    assert found["subfolder_images"] == ["more/ (2 image(s))"]
    assert [i.severity for i in report.issues if "cannot be read" in i.message] == ["error"]
    assert report.subsets[0].images == 18  # what sd-scripts globs, unreadable ones included


def test_duplicates_within_and_across_subsets(tmp_path, images):
    a = images(tmp_path / "10_a", [(512, 512 + 64 * i) for i in range(15)], caption="a")
    b = images(tmp_path / "10_b", [(640, 640 + 64 * i) for i in range(15)], caption="b")
    shutil.copy(a[3], tmp_path / "10_a/copy.png")
    shutil.copy(a[4], tmp_path / "10_b/other.png")
    big = Image.effect_noise((300, 300), 50).convert("RGB")  # > 64 KiB: hashed in full after the head
    big.save(tmp_path / "10_b/big1.png")
    shutil.copy(tmp_path / "10_b/big1.png", tmp_path / "10_b/big2.png")
    data = bytearray((tmp_path / "10_b/big1.png").read_bytes())
    data[-20] ^= 1  # same size, same first 64 KiB, different bytes
    (tmp_path / "10_b/big3.png").write_bytes(bytes(data))
    report = check_folder(tmp_path)
    assert kinds(report, 0)["duplicate"] == ["img003.png = copy.png"]
    assert sorted(kinds(report, 1)["duplicate"]) == ["big2.png = big1.png", f"other.png = {a[4]}"]
    assert b  # the second subset's own images are all different


def test_sizes_and_aspect(tmp_path, images):
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 13 + [(400, 600), (600, 2000), (520, 520)])
    on = kinds(check_folder(folder))
    assert on["small"] == ["img013.png: 400x600"]
    assert on["extreme_aspect"] == ["img014.png: 600x2000"]
    assert "not_multiple_64" not in on
    off = kinds(check_folder(folder, bucketing=False))
    assert off["not_multiple_64"] == ["img013.png: 400x600", "img014.png: 600x2000", "img015.png: 520x520"]


def test_buckets_smaller_than_the_batch(tmp_path, images):
    images(tmp_path / "10_sks", [(512, 512)] * 14 + [(1024, 512)])
    report = check_folder(tmp_path / "10_sks", batch_size=4)
    (issue,) = report.issues
    assert issue.where == str(tmp_path / "10_sks") and issue.severity == "warning"
    assert "1 bucket(s) hold fewer images than the batch size 4: 704x320 (1 image(s), x repeats 10)" in issue.message
    assert check_folder(tmp_path / "10_sks", batch_size=1).issues == []


def test_deep_decodes_and_reads_exif(tmp_path, images):
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 14)
    Image.effect_noise((256, 256), 40).convert("RGB").save(folder / "cut.png")
    data = bytearray((folder / "cut.png").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # header and end fine, pixels damaged
    (folder / "cut.png").write_bytes(bytes(data))
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (768, 512)).save(folder / "phone.jpg", exif=exif)
    for name in ("cut", "phone"):
        (folder / f"{name}.txt").write_text("sks")
    assert "decode_failed" not in kinds(check_folder(folder))
    deep = check_folder(folder, deep=True)
    assert [e.split(":")[0] for e in kinds(deep)["decode_failed"]] == ["cut.png"]
    assert kinds(deep)["exif_rotated"] == ["phone.jpg: orientation 6"]
    assert deep.errors and deep.deep


def test_spec_issues_are_located_at_the_subset(tmp_path, images, write_spec):
    images(tmp_path / "img/10_sks", [(512, 512)] * 11 + [(512, 768)], caption="sks, photo")
    (tmp_path / "img/10_sks/img000.txt").write_bytes(b"")
    spec = write_spec(SPEC.format(batch=2, path="img/10_sks", extra=""))
    report = check_spec_dataset(load_spec(spec))
    lines = messages(report)
    assert (
        lines[0]
        == "spec.yaml:6: warning: dataset.subsets[0].path: 12 image(s); the guide wants at least 10 and 15 or more is better"
    )
    assert lines[1].startswith("spec.yaml:6: dataset.subsets[0].path: 1 caption file(s) are empty (0 bytes)")
    assert lines[2].startswith("spec.yaml:4: warning: dataset.batch_size: 1 bucket(s) hold fewer images")
    assert report.subsets[0].input.repeats == 10 and report.subsets[0].input.repeats_from == "folder"


def test_spec_folder_and_repeat_errors(tmp_path, images, write_spec):
    images(tmp_path / "plain", [(512, 512)] * 15, caption="x")
    spec = write_spec(SPEC.format(batch=1, path="10_missing", extra="    - path: plain\n"))
    lines = messages(check_spec_dataset(load_spec(spec)))
    assert lines[0].startswith("spec.yaml:7: dataset.subsets[1].repeats: the folder 'plain' is not named N_name")
    assert lines[1] == f"spec.yaml:6: dataset.subsets[0].path: {tmp_path / '10_missing'} does not exist"


def test_spec_auto_repeats_and_buckets_match_plan(tmp_path, images, write_spec):
    images(tmp_path / "img/sks", [(512, 512)] * 10 + [(512, 768)] * 7 + [(768, 512)] * 3, caption="sks, a")
    extra = "      repeats: auto\n      class_tokens: sks\n"
    spec = load_spec(write_spec(SPEC.format(batch=3, path="img/sks", extra=extra)))
    report = check_spec_dataset(spec)
    plan = make_plan(spec)
    assert report.subsets[0].input.repeats is None and report.subsets[0].repeats == plan.subsets[0].repeats
    assert {b.resolution: b.images_x_repeats for b in report.buckets} == plan.buckets
    assert [b.images for b in report.buckets] == [7, 10, 3]
    assert report.issues == []


def test_json_report(tmp_path, images):
    paths = images(tmp_path / "10_sks", [(512, 512)] * 15)
    paths[0].with_suffix(".txt").unlink()
    data = report_json(check_folder(tmp_path / "10_sks", batch_size=2))
    json.dumps(data)
    assert data["ok"] is True and data["errors"] == [] and len(data["warnings"]) == 1
    (sub,) = data["subsets"]
    assert sub["images"] == 15 and sub["captioned"] == 14 and sub["repeats"] == 10
    assert sub["findings"] == {"caption_missing": ["img000.png"]}
    assert sub["buckets"] == [{"resolution": [512, 512], "images": 15}]
    assert data["buckets"] == [{"resolution": [512, 512], "images": 15, "images_x_repeats": 150, "batches": 75}]
    assert set(KINDS) >= set(sub["findings"])


def test_the_source_is_only_read(tmp_path, images):
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 15)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    check_folder(folder, deep=True)
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()} == before


def test_many_files_take_the_threaded_path(tmp_path, images, monkeypatch):
    from artlab_kohya.dataset import scan

    monkeypatch.setattr(scan, "_SLOW_S", 0.0)  # every read counts as slow: threads take over after the probe
    monkeypatch.setattr(scan, "_PROBE", 4)
    paths = images(tmp_path / "10_sks", [(512, 512)] * 20, caption="sks")
    shutil.copy(paths[0], tmp_path / "10_sks/dup.png")
    report = check_folder(tmp_path / "10_sks")
    assert report.subsets[0].captioned == 20
    assert kinds(report)["duplicate"] == ["img000.png = dup.png"]
    assert isinstance(Path(report.subsets[0].path), Path)


# --------------------------------------------------------------------------- against the real sd-scripts

PROBE = Path(__file__).parent / "engine" / "probe_dataset.py"


def sd_scripts_dataset(engine: dict[str, str], folder: Path, tmp_path: Path, batch: int = 2) -> dict:
    import subprocess

    toml = tmp_path / "dataset.toml"
    toml.write_text(
        f"[general]\nenable_bucket = true\nresolution = 512\nbatch_size = {batch}\n[[datasets]]\n"
        f'[[datasets.subsets]]\nimage_dir = "{folder}"\nnum_repeats = 10\nclass_tokens = "sks"\n'
        'caption_extension = ".txt"\n'
    )
    result = subprocess.run(
        [engine["ENGINE_PYTHON"], str(PROBE), engine["ARTLAB_KOHYA_DIR"], str(toml)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.engine
def test_sd_scripts_reads_the_folder_as_the_check_says(engine, tmp_path, images):
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 9 + [(512, 768)] * 4 + [(1024, 512)] * 2, caption="sks, a photo")
    paths[0].with_suffix(".txt").unlink()  # -> class tokens
    paths[1].with_suffix(".txt").write_text("sks one\nsks two\n")  # -> first line
    paths[2].with_suffix(".txt").write_text("\nsks second")  # -> empty caption
    shutil.copy(paths[3], folder / "skipped.Png")
    Image.new("RGB", (64, 64)).save(folder / "anim.gif")
    (folder / "face_1_2_3_4.png").write_bytes(paths[4].read_bytes() + b"\0")
    (folder / "face.txt").write_text("sks, face")
    report = check_folder(folder, batch_size=2)
    found = kinds(report)
    assert found["caption_missing"] == ["img000.png"] and found["caption_multiline"] == ["img001.txt"]
    assert found["caption_blank"] == ["img002.txt"] and found["skipped_files"] == ["anim.gif", "skipped.Png"]
    (seen,) = sd_scripts_dataset(engine, folder, tmp_path)["datasets"]
    assert seen["images"] == report.subsets[0].images == 16
    assert seen["captions"]["img000.png"] == "sks"
    assert seen["captions"]["img001.png"] == "sks one"
    assert seen["captions"]["img002.png"] == ""
    assert seen["captions"]["face_1_2_3_4.png"] == "sks, face"
    assert seen["buckets"] == {f"{b.resolution[0]}x{b.resolution[1]}": b.images_x_repeats for b in report.buckets}


@pytest.mark.engine
@pytest.mark.parametrize(
    ("content", "kind", "error"),
    [
        (b"", "caption_empty_file", "AssertionError"),
        ("sks, café".encode("latin-1"), "caption_not_utf8", "UnicodeDecodeError"),
    ],
)
def test_sd_scripts_stops_where_the_check_says_error(engine, tmp_path, images, content, kind, error):
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 15, caption="sks")
    paths[5].with_suffix(".txt").write_bytes(content)
    report = check_folder(folder)
    assert report.errors and list(kinds(report)) == [kind]
    assert sd_scripts_dataset(engine, folder, tmp_path)["error"]["type"] == error
