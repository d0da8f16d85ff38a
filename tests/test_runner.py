"""`run` end to end against a fake install (tests/fake_kohya) that replays real transcripts.

Nothing of ours is patched: the real launcher spawns the fake accelerate launcher, which runs the
fake train_network.py as its child; the output is parsed, displayed and recorded as in a real run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from artlab_kohya.run.rerun import load_lock
from artlab_kohya.run.train import RunOptions, SetupError, run_spec
from artlab_kohya.spec import load_spec
from artlab_kohya.trainer.install import Install

HERE = Path(__file__).parent
FAKE = HERE / "fake_kohya"


def fake_model(path: Path) -> Path:
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def tokenizer(folder: Path) -> Path:
    target = folder / "openai_clip-vit-large-patch14"
    target.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (target / name).write_text("{}")
    return folder


@pytest.fixture
def project(tmp_path, images, monkeypatch):
    images(tmp_path / "img/10_sks", [(512, 512)] * 12)  # run checks the dataset first: at least 10
    fake_model(tmp_path / "base.safetensors")
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tokenizer(tmp_path / "tok")))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model:\n  source: base.safetensors\n  family: sd15\n"
        "dataset:\n  resolution: 512\n  batch_size: 1\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img/10_sks\n"
        "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        "training:\n  epochs: 2\n  mixed_precision: 'no'\n"
        "output:\n  name: tiny_lora\n"
        f"kohya:\n  dir: {FAKE}\n  python: {sys.executable}\n"
    )
    return tmp_path


def run(project: Path, transcript: str = "lora", monkeypatch=None, **options):
    if monkeypatch is not None:
        monkeypatch.setenv("FAKE_TRANSCRIPT", transcript)
    loaded = load_spec(project / "spec.yaml")
    return run_spec(loaded, RunOptions(runs_root=project / "runs", plain=True, **options))


def test_successful_run_leaves_a_folder_that_reproduces_it(project, monkeypatch, capsys):
    outcome = run(project, "lora", monkeypatch)
    assert (outcome.status, outcome.exit_code, outcome.diagnosis) == ("succeeded", 0, None)
    folder = outcome.folder
    assert folder.parent == project / "runs" / "tiny_lora"
    names = sorted(p.name for p in folder.iterdir())
    for expected in ("spec.yaml", "spec.lock.yaml", "dataset.toml", "config.toml", "stdout.log", "stderr.log",
                     "events.jsonl", "result.json", "checkpoints"):  # fmt: skip
        assert expected in names
    assert (folder / "spec.yaml").read_text() == (project / "spec.yaml").read_text()
    lock = yaml.safe_load((folder / "spec.lock.yaml").read_text())
    assert lock["model"]["sha256"] and lock["model"]["family"] == "sd15"
    assert lock["spec"]["dataset"]["subsets"][0]["repeats"] == 10
    assert lock["spec"]["dataset"]["subsets"][0]["class_tokens"] == "sks"
    assert lock["argv"][:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert lock["argv"][-2:] == ["--config_file", str(folder / "config.toml")]
    assert lock["env"]["PYTHONUNBUFFERED"] == "1"
    assert lock["seed"] == 42 and lock["plan"]["total_steps"] == 240
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "succeeded" and result["exit_code"] == 0
    files = [Path(c["file"]).name for c in result["checkpoints"]]
    assert files == ["tiny_lora-000001.safetensors", "tiny_lora.safetensors"]
    assert [c["epoch"] for c in result["checkpoints"]] == [1, 2]
    assert result["checkpoints"][1]["avr_loss"] == pytest.approx(0.942)
    assert all(len(c["sha256"]) == 64 and c["size"] > 0 for c in result["checkpoints"])
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "Step"]
    assert steps[-1]["step"] == 120 and steps[-1]["loss"] == pytest.approx(0.942) and steps[-1]["epoch"] == 2
    assert all({"t", "epoch", "step", "loss", "it_s"} <= set(e) for e in steps)
    assert [e["path"].rsplit("/", 1)[1] for e in events if e["type"] == "CheckpointSaved"] == files
    assert "epoch 2/2" in (folder / "stdout.log").read_text()
    err = capsys.readouterr().err
    assert "succeeded" in err and "epoch 1/2" in err


def test_no_data_found_exits_zero_but_fails(project, monkeypatch):
    outcome = run(project, "fail_dataset_missing_dir", monkeypatch)
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert "No data found" in outcome.diagnosis and str(project / "img/10_sks") in outcome.diagnosis
    result = json.loads((outcome.folder / "result.json").read_text())
    assert result["status"] == "failed" and result["exit_code"] == 0


def test_out_of_memory_and_nan_are_diagnosed(project, monkeypatch):
    outcome = run(project, "torch_oom_nan", monkeypatch)
    assert outcome.status == "failed"
    assert "NaN" in outcome.diagnosis  # the nan comes first: the run is stopped there
    path = project / "spec.yaml"
    path.write_text(path.read_text().replace("training:\n", "training:\n  stop_on_nan: false\n"))
    outcome = run(project, "torch_oom_nan", monkeypatch)
    assert outcome.status == "failed" and "ran out of memory" in outcome.diagnosis
    assert "dataset.batch_size (now 1)" in outcome.diagnosis


def test_missing_module_names_the_package(project, monkeypatch):
    outcome = run(project, "module_not_found", monkeypatch)
    assert outcome.status == "failed" and "cannot import" in outcome.diagnosis


def test_rejected_argument_names_the_commit(project, monkeypatch):
    outcome = run(
        project,
        "fail_invalid_cli_arg_accelerate",
        monkeypatch,
        install=Install(FAKE, sys.executable, "0123456789abcdef"),
    )
    assert outcome.status == "failed" and "commit 01234567" in outcome.diagnosis


def test_never_overwrites_checkpoints(project, monkeypatch):
    out = project / "out"
    out.mkdir()
    (out / "tiny_lora.safetensors").write_bytes(b"precious")
    path = project / "spec.yaml"
    path.write_text(path.read_text().replace("output:\n", f"output:\n  dir: {out}\n"))
    with pytest.raises(SetupError, match="never overwrites"):
        run(project, "lora", monkeypatch)
    assert (out / "tiny_lora.safetensors").read_bytes() == b"precious"
    assert not (project / "runs").exists()


def test_pickled_base_model_is_refused(project, monkeypatch):
    (project / "base.ckpt").write_bytes(b"pickle")
    path = project / "spec.yaml"
    path.write_text(path.read_text().replace("base.safetensors", "base.ckpt"))
    with pytest.raises(SetupError, match="pickle"):
        run(project, "lora", monkeypatch)


def test_rerun_runs_the_lock_in_a_new_folder(project, monkeypatch):
    first = run(project, "lora", monkeypatch)
    loaded, options = load_lock(first.folder, plain=True)
    assert options.rerun_of == first.folder.resolve() and options.expect_sha256
    second = run_spec(loaded, options)
    assert second.status == "succeeded" and second.folder != first.folder
    assert second.folder.parent == first.folder.parent
    lock1 = yaml.safe_load((first.folder / "spec.lock.yaml").read_text())
    lock2 = yaml.safe_load((second.folder / "spec.lock.yaml").read_text())
    assert lock2["rerun_of"] == str(first.folder.resolve())
    assert lock2["model"]["sha256"] == lock1["model"]["sha256"]
    assert {k: v for k, v in lock2["spec"].items()} == lock1["spec"]
    fake_model(project / "base.safetensors").write_bytes(b"changed")
    with pytest.raises(Exception, match="changed since the run"):
        load_lock(first.folder)


def test_ctrl_c_interrupts_and_leaves_no_process(project):
    """The CLI in a real process: SIGINT mid-run -> exit 130, result interrupted, the group gone."""
    env = {**os.environ, "FAKE_TRANSCRIPT": "lora", "FAKE_DURATION": "30"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "artlab_kohya", "run", str(project / "spec.yaml"), "--plain",
         "--runs-dir", str(project / "runs")],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("epoch 1/2"):
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130, rest
    (folder,) = (project / "runs" / "tiny_lora").iterdir()
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "interrupted"
    assert "interrupted" in rest
    # This run's processes only (their command lines hold its config path): other checkouts may be
    # running the fake trainer at the same time.
    mine = str(folder / "config.toml")
    pids = subprocess.run(["pgrep", "-f", mine], capture_output=True, text=True).stdout.split()
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = subprocess.run(["pgrep", "-f", mine], capture_output=True, text=True).stdout.split()
    assert pids == []


def test_run_refuses_a_dataset_with_errors_unless_told(project):
    for extra in sorted((project / "img/10_sks").glob("img00[3-9]*")) + sorted((project / "img/10_sks").glob("img01*")):
        extra.unlink()
    env = {**os.environ, "FAKE_TRANSCRIPT": "lora"}
    argv = [sys.executable, "-m", "artlab_kohya", "run", str(project / "spec.yaml"), "--plain"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "dataset.subsets[0].path" in result.stderr and "3 image" in result.stderr
    assert not (project / "runs").exists()
    result = subprocess.run([*argv, "--ignore-dataset-errors"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
