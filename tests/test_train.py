"""`run` end to end against a fake install (tests/fake_kohya) that replays real transcripts.

Nothing of ours is patched: the real launcher spawns the fake accelerate launcher, which runs the
fake train_network.py as its child; the output is parsed, displayed and recorded as in a real run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from artlab_kohya.build.tomlio import tomllib
from artlab_kohya.errors import ArtlabError
from artlab_kohya.run.folder import RESULT_RESERVE, OutputClaim, owner, status_of
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
    with pytest.raises(ArtlabError, match="pickle"):
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


# --------------------------------------------------------------------------- what a run must survive
# Each case ends with result.json in a final state, no traceback for the user, and no checkpoint cut
# short under its final name.


def _with_output_dir(project: Path, out: Path) -> None:
    path = project / "spec.yaml"
    path.write_text(path.read_text().replace("output:\n", f"output:\n  dir: {out}\n"))


def test_a_relative_runs_dir_still_hands_the_trainer_absolute_paths(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("FAKE_TRANSCRIPT", "lora")
    from artlab_kohya.run.train import RunOptions, run_spec
    from artlab_kohya.spec import load_spec

    outcome = run_spec(load_spec(Path("spec.yaml")), RunOptions(runs_root=Path("runs"), plain=True))
    assert outcome.status == "succeeded", outcome.diagnosis
    assert outcome.folder.is_absolute()
    config = tomllib.loads((outcome.folder / "config.toml").read_text())
    flat = {k: v for table in config.values() if isinstance(table, dict) for k, v in table.items()}
    for key in ("output_dir", "dataset_config", "pretrained_model_name_or_path", "logging_dir", "tokenizer_cache_dir"):
        assert Path(flat[key]).is_absolute(), (key, flat[key])
    dataset = tomllib.loads((outcome.folder / "dataset.toml").read_text())
    assert all(Path(s["image_dir"]).is_absolute() for d in dataset["datasets"] for s in d["subsets"])


def test_a_shared_output_dir_is_claimed(project, monkeypatch):
    out = project / "out"
    _with_output_dir(project, out)
    held = OutputClaim.take(out, "tiny_lora")  # another run of this process holds it
    try:
        with pytest.raises(SetupError, match="in use by another run"):
            run(project, "lora", monkeypatch)
        assert not (project / "runs").exists()  # refused before any folder
    finally:
        held.release()
    assert run(project, "lora", monkeypatch).status == "succeeded"
    assert not list(out.glob(".*artlab-claim"))  # released at the end


def test_a_claim_left_by_a_killed_run_is_taken_over(project, monkeypatch):
    out = project / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / ".tiny_lora.artlab-claim").write_text(json.dumps({**owner(), "pid": int(dead.stdout)}))
    _with_output_dir(project, out)
    assert run(project, "lora", monkeypatch).status == "succeeded"


def test_a_dangling_link_named_like_a_checkpoint_is_a_clash(project, monkeypatch):
    out = project / "out"
    out.mkdir()
    (out / "tiny_lora.safetensors").symlink_to(project / "elsewhere.safetensors")
    _with_output_dir(project, out)
    with pytest.raises(SetupError, match="never overwrites"):
        run(project, "lora", monkeypatch)
    assert not (project / "elsewhere.safetensors").exists()


def test_a_path_part_over_255_bytes_is_an_error_not_a_traceback(project, monkeypatch):
    from artlab_kohya.run.train import RunOptions, run_spec
    from artlab_kohya.spec import load_spec

    monkeypatch.setenv("FAKE_TRANSCRIPT", "lora")
    with pytest.raises(SetupError, match="too long"):
        run_spec(load_spec(project / "spec.yaml"), RunOptions(runs_root=project / ("r" * 300), plain=True))


def test_a_project_folder_named_like_rich_markup(tmp_path, images, monkeypatch, capsys):
    odd = tmp_path / "[x][bold][link=y]"
    odd.mkdir()
    images(odd / "img/10_sks", [(512, 512)] * 12)
    fake_model(odd / "base.safetensors")
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tokenizer(tmp_path / "tok")))
    spec = (Path(__file__).parent / "fake_kohya").resolve()
    (odd / "spec.yaml").write_text(
        "model:\n  source: base.safetensors\n  family: sd15\n"
        "dataset:\n  resolution: 512\n  batch_size: 1\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img/10_sks\n"
        "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        "training:\n  epochs: 2\n  mixed_precision: 'no'\n"
        "output:\n  name: tiny_lora\n"
        f"kohya:\n  dir: {spec}\n  python: {sys.executable}\n"
    )
    outcome = run(odd, "lora", monkeypatch)
    assert outcome.status == "succeeded", outcome.diagnosis
    assert "[x][bold][link=y]" in capsys.readouterr().err


def test_a_killed_wrapper_shows_as_abandoned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert status_of({"status": "running", **owner()}) == "running"  # this process: alive
    assert status_of({"status": "running", **owner(), "pid": int(dead.stdout)}) == "abandoned"
    assert status_of({"status": "running", "pid": int(dead.stdout), "host": "another-host"}) == "running"
    assert status_of({"status": "succeeded", **owner(), "pid": int(dead.stdout)}) == "succeeded"


def test_result_json_records_who_runs_it_and_keeps_room(project, monkeypatch):
    outcome = run(project, "lora", monkeypatch)
    raw = (outcome.folder / "result.json").read_bytes()
    result = json.loads(raw)
    assert result["pid"] == os.getpid() and result["host"] == owner()["host"]
    assert len(raw) >= RESULT_RESERVE  # the room its final state can always be written into


@pytest.fixture
def small_disk(tmp_path):
    """A 192 KiB tmpfs: a real full disk (needs root, as CI has; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_the_run(project, monkeypatch, capsys, small_disk):
    monkeypatch.setenv("FAKE_CHECKPOINT_BYTES", str(400 * 1024))  # more than the disk holds
    from artlab_kohya.run.train import RunOptions, run_spec
    from artlab_kohya.spec import load_spec

    monkeypatch.setenv("FAKE_TRANSCRIPT", "lora")
    loaded = load_spec(project / "spec.yaml")
    try:
        outcome = run_spec(loaded, RunOptions(runs_root=small_disk / "runs", plain=True))
        folder, status = outcome.folder, outcome.status
    except SetupError as exc:  # the wrapper's own write failed first: recorded, then reported in one line
        assert "disk is full" in str(exc)
        folder, status = next((small_disk / "runs" / "tiny_lora").iterdir()), "failed"
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == status == "failed"
    assert "disk" in result["diagnosis"].lower() and "full" in result["diagnosis"].lower()
    checkpoints = folder / "checkpoints"
    assert not (checkpoints / "tiny_lora-000001.safetensors").exists()  # cut short: set aside
    assert (checkpoints / "tiny_lora-000001.safetensors.partial").exists() or not any(checkpoints.iterdir())
    assert "Traceback" not in capsys.readouterr().err.split("run folder:")[0]


def test_disk_full_before_launch(project, monkeypatch, small_disk):
    filler = small_disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):  # leave the disk all but full
        f.write(b"\0" * (400 * 1024))
    from artlab_kohya.run.train import RunOptions, run_spec
    from artlab_kohya.spec import load_spec

    with pytest.raises(SetupError, match="disk is full"):
        run_spec(load_spec(project / "spec.yaml"), RunOptions(runs_root=small_disk / "runs", plain=True))
    folders = (
        list((small_disk / "runs" / "tiny_lora").iterdir()) if (small_disk / "runs" / "tiny_lora").exists() else []
    )
    for folder in folders:  # whatever exists ends in a final state
        result = folder / "result.json"
        if result.exists():
            assert json.loads(result.read_text())["status"] == "failed"
    shutil.rmtree(small_disk / "runs", ignore_errors=True)


def test_a_random_seed_is_one_number_in_the_config_the_lock_and_a_rerun(project, monkeypatch):
    spec = project / "spec.yaml"
    spec.write_text(spec.read_text().replace("  epochs: 2\n", "  epochs: 2\n  seed: random\n"))
    first = run(project, "lora", monkeypatch)
    lock = yaml.safe_load((first.folder / "spec.lock.yaml").read_text())
    config = tomllib.loads((first.folder / "config.toml").read_text())
    assert isinstance(lock["seed"], int) and lock["seed"] == lock["spec"]["training"]["seed"]
    assert config["training_arguments"]["seed"] == lock["seed"]
    assert "seed: random" in (first.folder / "spec.yaml").read_text()  # the spec as written, beside the number
    loaded, _ = load_lock(first.folder, plain=True)
    assert loaded.spec.training.seed == lock["seed"] and not loaded.seed_drawn


def test_a_two_gpu_run_replayed_plans_the_steps_the_two_processes_took(tmp_path, images, monkeypatch):
    """Two training processes on one host (launch.num_processes 2, gpu_ids [0, 1]) against the stand-in
    replaying what the real train_network.py printed on two H200s for this spec (lora_two_gpus.*, both
    ranks' output): half the steps of one process, which plan says before launch, and accelerate's
    multi-GPU arguments in the lock."""
    from fake_project import stand_in_base

    from artlab_kohya.build.plan import make_plan

    images(tmp_path / "img", [(512, 512)] * 64, caption="bench, a colour field")
    stand_in_base(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_TRANSCRIPT", "lora_two_gpus")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model:\n  source: base.safetensors\n  family: sd15\n"
        "dataset:\n  resolution: 512\n  batch_size: 8\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img\n      repeats: 10\n      class_tokens: bench\n"
        "network:\n  type: lora\n  dim: 32\n  alpha: 16\n"
        "training:\n  epochs: 2\n  save_every_n_epochs: 1\n  mixed_precision: bf16\n"
        "output:\n  name: tiny_lora\n  log_with: none\n"
        "launch:\n  num_processes: 2\n  gpu_ids: [0, 1]\n"
        f"kohya:\n  dir: {FAKE}\n  python: {sys.executable}\n"
    )
    plan = make_plan(load_spec(spec))
    assert (plan.train_images_x_repeats, plan.batches_per_epoch, plan.total_steps) == (640, 40, 80)

    outcome = run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs", plain=True))
    assert (outcome.status, outcome.exit_code) == ("succeeded", 0), outcome.diagnosis
    lock = yaml.safe_load((outcome.folder / "spec.lock.yaml").read_text())
    assert lock["plan"]["total_steps"] == 80
    argv = " ".join(lock["argv"])
    assert "--num_processes 2" in argv and "--multi_gpu" in argv and "--gpu_ids 0,1" in argv
    events = [json.loads(line) for line in (outcome.folder / "events.jsonl").read_text().splitlines()]
    assert next(e for e in events if e["type"] == "TrainingSummary")["total_steps"] == 80
    assert [e["step"] for e in events if e["type"] == "Step"][-1] == 80
    result = json.loads((outcome.folder / "result.json").read_text())
    assert [Path(c["file"]).name for c in result["checkpoints"]] == [
        "tiny_lora-000001.safetensors",
        "tiny_lora.safetensors",
    ]
