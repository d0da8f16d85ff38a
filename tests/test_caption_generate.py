"""captioning.py: the command as data; a real child process in a stand-in sd-scripts folder that replays
the captioning scripts' recorded output (tests/replay.py) and writes captions as they do; and (engine) the
real sd-scripts scripts where their dependencies and a model exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from artlab_kohya.dataset.caption_edit import list_backups, restore
from artlab_kohya.dataset.caption_generate import (
    CaptioningError,
    CaptionOptions,
    build_command,
    caption_folder,
)
from artlab_kohya.trainer.install import Install
from artlab_kohya.trainer.output import LogRecord, Progress

TESTS = Path(__file__).parent
TRANSCRIPTS = TESTS / "data/captioning"  # not data/transcripts: those are the training parser's, each with expectations
FAKE_SCRIPT = """\
import argparse, json, os, subprocess, sys
parser = argparse.ArgumentParser()
parser.add_argument("train_data_dir")
parser.add_argument("--caption_extension", default={default_ext!r})
parser.add_argument("--batch_size")
parser.add_argument("--onnx", action="store_true")
parser.add_argument("--model_dir")
parser.add_argument("--caption_weights")
args = parser.parse_args()
images = sorted(n for n in os.listdir(args.train_data_dir) if n.endswith(".png"))
with open(os.path.join(os.path.dirname(__file__), "..", "calls.jsonl"), "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "images": images,
                          "pythonpath": os.environ.get("PYTHONPATH", "")}}) + "\\n")
rc = subprocess.call([sys.executable, {replay!r}, {transcript!r}, "--duration", "0.3"])
for name in images[: {write!r}]:
    with open(os.path.join(args.train_data_dir, os.path.splitext(name)[0] + args.caption_extension), "w") as f:
        f.write("solo, smile\\n")
sys.exit(rc)
"""


def fake_sd_scripts(root: Path, model: str, transcript: str, write: int = 1000) -> Install:
    """A stand-in sd-scripts folder whose captioning script replays a recorded transcript."""
    script = root / ("finetune/make_captions.py" if model == "blip" else "finetune/tag_images_by_wd14_tagger.py")
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(
        FAKE_SCRIPT.format(
            default_ext=".caption" if model == "blip" else ".txt",
            replay=str(TESTS / "replay.py"),
            transcript=str(TRANSCRIPTS / transcript),
            write=write,
        )
    )
    return Install(dir=root, python=sys.executable)


def calls(install: Install) -> list[dict]:
    return [json.loads(line) for line in (install.dir / "calls.jsonl").read_text().splitlines()]


def test_build_command_is_pure_data(tmp_path):
    install = Install(dir=Path("/sd"), python="/venv/bin/python")
    argv, env = build_command(install, Path("/tmp/work"), CaptionOptions("wd14", model_dir=Path("/m"), threshold=0.5))
    assert argv == [
        "/venv/bin/python", "/sd/finetune/tag_images_by_wd14_tagger.py", "/tmp/work",
        "--caption_extension", ".txt", "--batch_size", "1", "--onnx", "--model_dir", "/m", "--thresh", "0.5",
    ]  # fmt: skip
    assert env["PYTHONPATH"].split(os.pathsep)[0] == "/sd" and env["PYTHONUNBUFFERED"] == "1"
    argv, _ = build_command(install, Path("/w"), CaptionOptions("blip", caption_extension=".cap", weights="/b.pth"))
    assert argv == [
        "/venv/bin/python", "/sd/finetune/make_captions.py", "/w",
        "--caption_extension", ".cap", "--batch_size", "1", "--caption_weights", "/b.pth",
    ]  # fmt: skip


def test_wd14_replay_progress_prefix_and_skip_existing(tmp_path, images):
    install = fake_sd_scripts(tmp_path / "sd", "wd14", "caption_wd14_fake_model")
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 4, caption=None)
    paths[0].with_suffix(".txt").write_text("my own caption\n")
    events = []
    result = caption_folder(folder, install, CaptionOptions("wd14"), prefix="sks", on_event=events.append)
    assert (result.images, result.asked, result.kept, result.written, result.missing) == (4, 3, 1, 3, [])
    assert (folder / "img000.txt").read_text() == "my own caption\n"  # skip-existing
    assert [(folder / f"img00{i}.txt").read_text() for i in (1, 2, 3)] == ["sks, solo, smile\n"] * 3
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0] == Progress("", 0, 40, 0.0, None, None) and (progress[-1].n, progress[-1].total) == (40, 40)
    assert LogRecord("INFO", "found 40 images.", "tag_images_by_wd14_tagger.py:324", None) in events
    (call,) = calls(install)
    assert call["images"] == ["img001.png", "img002.png", "img003.png"]  # only those without a caption
    assert call["cwd"] == str(install.dir) and call["pythonpath"].startswith(str(install.dir))
    assert call["argv"][1:] == ["--caption_extension", ".txt", "--batch_size", "1", "--onnx"]
    assert not list(folder.glob(".*.tmp")) and folder.resolve() != Path(call["argv"][0]).resolve()


def test_overwrite_backs_up_and_restores(tmp_path, images):
    install = fake_sd_scripts(tmp_path / "sd", "wd14", "caption_wd14_fake_model")
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 2, caption="hand written")
    result = caption_folder(folder, install, CaptionOptions("wd14"), postfix="best", overwrite=True)
    assert result.written == 2 and (folder / "img000.txt").read_text() == "solo, smile, best\n"
    (backup,) = list_backups(folder)
    assert backup.changed == ("img000.txt", "img001.txt") and backup.command == "caption --model wd14 --overwrite"
    restore(folder)
    assert (folder / "img001.txt").read_text() == "hand written"
    assert caption_folder(folder, install, CaptionOptions("wd14")).asked == 0  # all captioned: no child at all


def test_missing_module_gives_a_hint(tmp_path, images):
    install = fake_sd_scripts(tmp_path / "sd", "blip", "caption_blip_no_timm", write=0)
    images(tmp_path / "imgs", [(512, 512)] * 2, caption=None)
    with pytest.raises(CaptioningError, match="no module 'timm': blip captioning needs timm and fairscale"):
        caption_folder(tmp_path / "imgs", install, CaptionOptions("blip"))
    assert not list((tmp_path / "imgs").glob("*.txt"))


def test_captions_made_before_a_failure_are_kept(tmp_path, images):
    install = fake_sd_scripts(tmp_path / "sd", "blip", "caption_blip_no_weights", write=1)
    images(tmp_path / "imgs", [(512, 512)] * 3, caption=None)
    with pytest.raises(CaptioningError, match="status 1: TypeError: .* first use: run once with network access"):
        caption_folder(tmp_path / "imgs", install, CaptionOptions("blip"))
    assert (tmp_path / "imgs/img000.txt").read_text() == "solo, smile\n"
    assert not (tmp_path / "imgs/img001.txt").exists()


def test_no_script_no_child(tmp_path, images):
    images(tmp_path / "imgs", [(512, 512)], caption=None)
    with pytest.raises(CaptioningError, match="--kohya-dir"):
        caption_folder(tmp_path / "imgs", Install(tmp_path, sys.executable), CaptionOptions("wd14"))


# --------------------------------------------------------------------------- the real scripts


def _python_with(engine: dict[str, str], *modules: str) -> str:
    python = os.environ.get("ARTLAB_CAPTION_PYTHON") or engine["ENGINE_PYTHON"]
    probe = subprocess.run([python, "-c", f"import {', '.join(modules)}"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(
            f"{python} cannot import {', '.join(modules)}: set ARTLAB_CAPTION_PYTHON to a trainer Python with them"
        )
    return python


@pytest.mark.engine
def test_real_wd14_script(engine, tmp_path, images):
    """sd-scripts' tag_images_by_wd14_tagger.py itself. With ARTLAB_WD14_MODEL_DIR (a --model_dir holding
    SmilingWolf_wd-v1-4-convnext-tagger-v2/) it runs the real tagger; else a tiny stand-in ONNX model with
    the same shapes and a 13-tag list (tests/data/captioning/make_fake_tagger.py), since weights cannot be
    downloaded here."""
    python = _python_with(engine, "onnx", "onnxruntime")
    model_dir = os.environ.get("ARTLAB_WD14_MODEL_DIR")
    if not model_dir:
        model_dir = str(tmp_path / "models")
        target = Path(model_dir) / "SmilingWolf_wd-v1-4-convnext-tagger-v2"
        subprocess.run([python, str(TESTS / "data/captioning/make_fake_tagger.py"), str(target)], check=True)
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 5, caption=None)
    install = Install(Path(engine["ARTLAB_KOHYA_DIR"]), python)
    events = []
    options = CaptionOptions("wd14", model_dir=Path(model_dir))
    result = caption_folder(folder, install, options, prefix="sks", on_event=events.append)
    assert result.written == 5
    for caption in folder.glob("*.txt"):
        assert caption.read_text().startswith("sks")
    progress = [e for e in events if isinstance(e, Progress)]
    assert (progress[-1].n, progress[-1].total) == (5, 5)


@pytest.mark.engine
def test_real_blip_script(engine, tmp_path, images):
    """sd-scripts' make_captions.py itself; needs BLIP's weights (ARTLAB_BLIP_WEIGHTS: model_large_caption.pth),
    BERT's tokenizer in the hub cache, and timm and fairscale in the trainer's Python."""
    weights = os.environ.get("ARTLAB_BLIP_WEIGHTS")
    if not weights or not Path(weights).is_file():
        pytest.skip(
            "BLIP weights not available: set ARTLAB_BLIP_WEIGHTS to model_large_caption.pth (not downloadable here)"
        )
    python = _python_with(engine, "timm", "fairscale")
    folder = tmp_path / "imgs"
    images(folder, [(512, 512)] * 2, caption=None)
    install = Install(Path(engine["ARTLAB_KOHYA_DIR"]), python)
    result = caption_folder(folder, install, CaptionOptions("blip", weights=weights), prefix="sks")
    assert result.written == 2
    assert textwrap.shorten((folder / "img000.txt").read_text(), 200).startswith("sks, ")


@pytest.mark.parametrize("terminal", [True, False])
def test_console_progress(terminal):
    import io

    from replay import parse_transcript
    from rich.console import Console

    from artlab_kohya.dataset.caption_generate import ConsoleProgress

    out = io.StringIO()
    display = ConsoleProgress(Console(file=out, force_terminal=terminal, width=100))
    stdout, stderr = ((TRANSCRIPTS / f"caption_wd14_fake_model.{s}").read_text() for s in ("stdout", "stderr"))
    for event in parse_transcript(stdout, stderr):
        display(event)
    display.close()
    text = out.getvalue()
    assert "INFO: found 40 images." in text and "40/40" in text
    if not terminal:
        assert text.count("captioning ") == 7  # frames 0, 2, 7, 14, 21, 28, 35, 40: a line when the tenth changes


def test_not_the_trainers_python(tmp_path, images):
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("this Python has torch; the test needs one without it, as artlab-kohya's own venv is")
    install = fake_sd_scripts(tmp_path / "sd", "wd14", "caption_wd14_fake_model")
    (install.dir / "finetune/tag_images_by_wd14_tagger.py").write_text("import torch\n")  # as the real one starts
    images(tmp_path / "imgs", [(512, 512)], caption=None)
    with pytest.raises(
        CaptioningError, match="has no module 'torch': it is not sd-scripts' environment; pass --python"
    ):
        caption_folder(tmp_path / "imgs", install, CaptionOptions("wd14"))
