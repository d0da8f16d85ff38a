"""`sweep` end to end against the stand-in install (tests/fake_kohya), nothing of ours patched: a 2x2
matrix run as a queue, interrupted with Ctrl-C in its third run and resumed with no run repeated; then
`runs`, `pick` and `report` on what it left, the report opened in a real headless Chromium. Also: a
failed run does not stop the others, runs side by side on two GPUs (and Ctrl-C there), the skip rule's
hash against the lock's, and `run` writing report.html."""

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
from chromium import Chromium, find_chromium
from click.testing import CliRunner
from fake_project import fake_project

from artlab_kohya.cli.main import main
from artlab_kohya.experiments.matrix import expand, load_variants
from artlab_kohya.experiments.sweep import SweepOptions, resolved_spec, run_sweep, spec_sha256
from artlab_kohya.spec import load_spec

MATRIX = """\
sample:
  prompts:
    - "sks dog on a beach --s 2"
  every_n_epochs: 1
matrix:
  network.dim: [4, 8]
  optimizer.unet_lr: [1.0e-4, 5.0e-5]
"""
NAMES = ["tiny-dim4-unet_lr1e-4", "tiny-dim4-unet_lr5e-5", "tiny-dim8-unet_lr1e-4", "tiny-dim8-unet_lr5e-5"]
# The lora transcript's average losses are 1.06 (epoch 1) and 0.942 (epoch 2); scaled per run:
SCALE = {"dim4-unet_lr1e-4": 0.1, "dim4-unet_lr5e-5": 0.08, "dim8-unet_lr1e-4": 0.09}  # dim8-unet_lr5e-5: 1
PICKS = {  # run: (epoch, its loss), by the rule
    NAMES[0]: (2, 0.0942),  # 0.106, 0.0942: the latest inside
    NAMES[1]: (1, 0.0848),  # 0.0848, 0.07536: only epoch 1 inside
    NAMES[2]: (2, 0.08478),  # 0.0954, 0.08478: both inside, the latest
    NAMES[3]: (2, 0.942),  # none inside: the nearest
}


def env(**more: str) -> dict[str, str]:
    return {**os.environ, "FAKE_LOSS_SCALE": json.dumps(SCALE), **more}


def sweep_cli(project: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "artlab_kohya", "sweep", str(project / "spec.yaml"), "--plain", *extra]


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def folders(project: Path, name: str) -> list[Path]:
    parent = project / "runs" / name
    return sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []


def left_behind(project: Path) -> list[str]:
    """Processes still running with this project's path in their command line (trainers, workers)."""
    deadline = time.monotonic() + 10
    while True:
        found = subprocess.run(["pgrep", "-f", str(project)], capture_output=True, text=True).stdout.split()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def status(sweep: Path) -> dict:
    return json.loads((sweep / "sweep.json").read_text())


def test_a_2x2_sweep_interrupted_resumed_then_runs_pick_report(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")

    # 1. Ctrl-C during the third run.
    proc = subprocess.Popen(
        sweep_cli(project), env=env(FAKE_DURATION="1.5"), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("sweep: run 3/4"):
            break
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("epoch 1/2"):
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    assert left_behind(project) == []
    (sweep,) = (project / "runs" / "tiny").iterdir()
    record = status(sweep)
    assert record["status"] == "interrupted" and record["pid"] is None
    assert [r["name"] for r in record["runs"]] == NAMES
    assert [r["status"] for r in record["runs"]] == ["succeeded", "succeeded", "interrupted", "pending"]
    assert record["runs"][0]["values"] == {"network.dim": 4, "optimizer.unet_lr": 0.0001}
    assert record["runs"][0]["overrides"] == [
        "network.dim=4",
        "optimizer.unet_lr=0.0001",
        f'output.name="{NAMES[0]}"',
    ]
    (interrupted,) = folders(project, NAMES[2])
    assert json.loads((interrupted / "result.json").read_text())["status"] == "interrupted"
    assert record["runs"][2]["folder"] == os.path.relpath(interrupted, sweep)
    assert folders(project, NAMES[3]) == []
    assert "sweep interrupted: 2 succeeded, 1 interrupted, 1 pending" in rest

    # 2. The same command resumes: the two that succeeded are not run again.
    first = {name: folders(project, name) for name in NAMES[:2]}
    done = subprocess.run(sweep_cli(project), env=env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in (project / "runs" / "tiny").iterdir()] == [sweep.name]  # the same sweep folder
    assert {name: folders(project, name) for name in NAMES[:2]} == first
    assert len(folders(project, NAMES[2])) == 2 and len(folders(project, NAMES[3])) == 1
    assert "sweep: run 1/2: tiny-dim8-unet_lr1e-4" in done.stderr and "run 2/2: tiny-dim8-unet_lr5e-5" in done.stderr
    record = status(sweep)
    assert record["status"] == "finished" and [r["status"] for r in record["runs"]] == ["succeeded"] * 4
    assert len(record["runs"][2]["attempts"]) == 2
    final = {name: (sweep / record["runs"][i]["folder"]).resolve() for i, name in enumerate(NAMES)}
    for name, folder in final.items():
        assert json.loads((folder / "result.json").read_text())["status"] == "succeeded", name
        assert (folder / "report.html").is_file()
        lock = yaml.safe_load((folder / "spec.lock.yaml").read_text())
        assert lock["spec"]["output"]["name"] == name
    lock = yaml.safe_load((final[NAMES[3]] / "spec.lock.yaml").read_text())
    assert (lock["spec"]["network"]["dim"], lock["spec"]["optimizer"]["unet_lr"]) == (8, 5e-5)

    # 3. Once finished, the same command skips every run (their resolved specs succeeded).
    again = subprocess.run(sweep_cli(project), env=env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stderr.count("skip tiny-") == 4, again.stderr[-2000:]
    assert all(len(folders(project, n)) == c for n, c in zip(NAMES, (1, 1, 2, 1), strict=True))

    # 4. runs: the sweep's four, its values as columns; the root: all five run folders.
    code, out, err = cli("runs", str(sweep), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["varied"] == ["network.dim", "optimizer.unet_lr"]
    rows = data["runs"]
    assert [r["run"] for r in rows] == NAMES and {r["status"] for r in rows} == {"succeeded"}
    assert [(r["pick_epoch"], round(r["pick_loss"], 5)) for r in rows] == [PICKS[n] for n in NAMES]
    assert [r["values"]["network.dim"] for r in rows] == [4, 4, 8, 8]
    assert all(r["step"] == r["total_steps"] == 120 and r["model"] == "base.safetensors" for r in rows)
    code, out, _ = cli("runs", str(project / "runs"))
    lines = out.splitlines()
    assert len(lines) == 6 and sorted(line.split()[1] for line in lines[1:]) == ["interrupted"] + ["succeeded"] * 4
    assert lines[0].split()[9:11] == ["network.dim", "optimizer.unet_lr"]

    # 5. pick: each run's pick, the runs inside the window first; --copy keeps the bytes.
    code, out, err = cli("pick", str(sweep), "--json", "--copy", str(tmp_path / "keep"))
    assert code == 0, err
    picks = json.loads(out)["runs"]
    assert [p["run"] for p in picks][-1] == NAMES[3]  # the only one outside the window comes last
    for p in picks:
        epoch, loss = PICKS[p["run"]]
        assert (p["pick"]["epoch"], round(p["pick"]["loss"], 5)) == (epoch, loss)
        copied = Path(p["copied_to"])
        assert copied.name == f"{p['run']}-e{epoch}.safetensors"
        assert copied.read_bytes() == Path(p["pick"]["checkpoint"]).read_bytes()
    assert len(list((tmp_path / "keep").iterdir())) == 4

    # 6. report: the sweep's page and each run's, with metadata and the samples.
    code, out, err = cli("report", str(sweep))
    assert code == 0, err
    page = Path(out.strip())
    assert page == sweep / "report.html"
    text = page.read_text()
    for name in NAMES:
        assert f">{name}</a>" in text
    run_page = (final[NAMES[0]] / "report.html").read_text()
    assert "ss_network_dim" in run_page and "sks dog on a beach --s 2" in run_page
    assert run_page.count("<details>") == 2 and run_page.count("<img ") == 2  # 2 checkpoints, 2 epochs x 1 prompt

    browser = find_chromium()
    if browser is None:
        pytest.skip("no Chromium binary for the browser half (apt-get install chromium, or set CHROMIUM)")
    with Chromium(browser, width=1200, height=900) as b:
        b.open(page.as_uri())
        assert b.load_images() == [8] * 4  # the last epoch's sample of each run (8 px fake PNGs)
        assert b.console_problems() == []
        assert b.evaluate("document.querySelectorAll('table.runs tbody tr').length") == 4
        assert b.evaluate("document.querySelectorAll('svg.chart g.series').length") == 4
        links = b.evaluate("[...document.querySelectorAll('table.runs a')].map(a => a.href)")
        b.open(links[0])
        assert b.evaluate("document.querySelector('h1').textContent").startswith(NAMES[0])
        assert b.load_images() == [8, 8]
        assert b.console_problems() == []
        assert b.evaluate("document.querySelectorAll('tr.picked').length") == 1
        assert b.evaluate("document.querySelectorAll('details').length") == 2


def test_a_failed_run_does_not_stop_the_others(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")
    monkeypatch.setenv("FAKE_TRANSCRIPT_FOR", json.dumps({"dim4-unet_lr5e-5": "torch_oom_nan"}))
    monkeypatch.setenv("FAKE_LOSS_SCALE", json.dumps(SCALE))
    lines: list[str] = []
    outcome = run_sweep(load_spec(project / "spec.yaml"), SweepOptions(plain=True, echo=lines.append))
    assert outcome.exit_code == 1
    record = status(outcome.folder)
    assert [r["status"] for r in record["runs"]] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert outcome.counts == {"succeeded": 3, "failed": 1}
    # Run again: only the failed one runs again (and fails again).
    again = run_sweep(load_spec(project / "spec.yaml"), SweepOptions(plain=True, echo=lines.append))
    assert again.folder != outcome.folder  # the first sweep had finished: a new one
    assert status(again.folder)["runs"][1]["status"] == "failed"
    assert [len(folders(project, n)) for n in NAMES] == [1, 2, 1, 1]
    assert sum(line.startswith("skip ") for line in lines) == 3


def test_the_skip_hash_is_the_locks(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")
    outcome = run_sweep(load_spec(project / "spec.yaml"), SweepOptions(plain=True, echo=lambda line: None))
    assert outcome.exit_code == 0
    loaded = load_spec(project / "spec.yaml")
    runs, _ = load_variants(loaded, expand(loaded))  # type: ignore[arg-type]
    for name, run in zip(NAMES, runs, strict=True):
        (folder,) = folders(project, name)
        lock = yaml.safe_load((folder / "spec.lock.yaml").read_text())
        assert spec_sha256(resolved_spec(run)) == spec_sha256(lock["spec"])
    changed = load_spec(project / "spec.yaml", ("training.epochs=3",))
    other, _ = load_variants(changed, expand(changed), ("training.epochs=3",))  # type: ignore[arg-type]
    first = yaml.safe_load((folders(project, NAMES[0])[0] / "spec.lock.yaml").read_text())["spec"]
    assert spec_sha256(resolved_spec(other[0])) != spec_sha256(first)
    lock = {"launch": {"gpu_ids": [0]}, "x": 1}
    assert spec_sha256(lock) == spec_sha256({"x": 1, "launch": {"gpu_ids": [1]}})  # the GPU does not count


def test_side_by_side_on_two_gpus(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")
    argv = sweep_cli(project, "--gpus", "0,1", "--set", "training.cache_latents=disk")
    done = subprocess.run(argv, env=env(FAKE_DURATION="1.5"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (project / "runs" / "tiny").iterdir()
    record = status(sweep)
    assert [r["status"] for r in record["runs"]] == ["succeeded"] * 4
    assert sorted(tuple(r["gpus"]) for r in record["runs"]) == [(0,), (0,), (1,), (1,)]
    launched = {}
    for entry in record["runs"]:
        folder = (sweep / entry["folder"]).resolve()
        lock = yaml.safe_load((folder / "spec.lock.yaml").read_text())
        gpu = lock["argv"][lock["argv"].index("--gpu_ids") + 1]
        assert [int(gpu)] == entry["gpus"] == lock["spec"]["launch"]["gpu_ids"]
        assert (sweep / entry["log"]).read_text().count("succeeded") >= 1
        result = json.loads((folder / "result.json").read_text())
        events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
        first_step = next(e["t"] for e in events if e["type"] == "Step")
        launched[entry["name"]] = (
            result["launched_at_unix"],
            result["launched_at_unix"] + result["duration_s"],
            first_step,
        )
    a, b = launched[NAMES[0]], launched[NAMES[1]]
    assert b[0] < a[1], "the second run started while the first still ran"
    assert b[0] >= a[0] + a[2] - 0.5, "the second run waited for the first run's first step (disk latents)"


def two_training_side_by_side(project: Path, duration: str) -> subprocess.Popen[str]:
    """`sweep --gpus 0,1` on the project, once both of its first two runs train (stderr still open)."""
    proc = subprocess.Popen(
        sweep_cli(project, "--gpus", "0,1"), env=env(FAKE_DURATION=duration), stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    started = 0
    for line in proc.stderr:
        started += line.startswith("sweep: start ")
        if started == 2:
            break
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len([n for n in NAMES[:2] if folders(project, n)]) < 2:
        time.sleep(0.2)
    time.sleep(1.5)
    return proc


def test_ctrl_c_side_by_side(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")
    proc = two_training_side_by_side(project, "30")
    assert proc.stderr is not None
    (sweep,) = (project / "runs" / "tiny").iterdir()
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert left_behind(project) == []
    record = status(sweep)
    assert [r["status"] for r in record["runs"]] == ["interrupted", "interrupted", "pending", "pending"]
    for name in NAMES[:2]:
        (folder,) = folders(project, name)
        assert json.loads((folder / "result.json").read_text())["status"] == "interrupted"


def test_run_writes_report_html(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, MATRIX.split("matrix:")[0])
    code, _, err = cli("run", str(project / "spec.yaml"), "--plain", "--runs-dir", str(project / "runs"))
    assert code == 0, err
    (folder,) = folders(project, "tiny_lora")
    assert f"report: {folder / 'report.html'}" in err
    page = (folder / "report.html").read_text()
    assert "tiny_lora" in page and page.count("<img ") == 2


def test_sweep_needs_a_matrix_and_gpus_for_every_process(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    code, _, err = cli("sweep", str(project / "spec.yaml"))
    assert code == 2 and "has no matrix" in err
    project2 = fake_project(tmp_path / "two", monkeypatch, MATRIX + "  launch.num_processes: [2]\n", name="tiny")
    code, _, err = cli("sweep", str(project2 / "spec.yaml"), "--gpus", "0")
    assert code == 2 and "a run needs 2 GPUs" in err
    code, _, err = cli("sweep", str(project2 / "spec.yaml"), "--gpus", "0,x")
    assert code == 2 and "comma-separated list" in err


def test_a_sweep_still_running_elsewhere_is_not_resumed(tmp_path, monkeypatch):
    from artlab_kohya.experiments.sweep import SweepError

    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")
    first = run_sweep(load_spec(project / "spec.yaml"), SweepOptions(plain=True, echo=lambda line: None))
    record = status(first.folder)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record |= {"status": "running", "pid": other.pid, "host": __import__("socket").gethostname()}
        (first.folder / "sweep.json").write_text(json.dumps(record))
        with pytest.raises(SweepError, match=f"is being run by process {other.pid}"):
            run_sweep(load_spec(project / "spec.yaml"), SweepOptions(plain=True, echo=lambda line: None))
    finally:
        other.kill()
        other.wait()
    again = run_sweep(load_spec(project / "spec.yaml"), SweepOptions(plain=True, echo=lambda line: None))
    assert again.folder == first.folder and again.exit_code == 0  # its process gone: resumed, all done
    assert [len(folders(project, n)) for n in NAMES] == [1, 1, 1, 1]


def test_a_sweep_killed_mid_run_keeps_its_run_folder_and_lists_it_abandoned(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")
    proc = subprocess.Popen(sweep_cli(project), env=env(FAKE_DURATION="30"), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("epoch 1/2"):  # the first run is training
            break
    proc.kill()  # SIGKILL: the sweep records nothing more
    proc.wait(timeout=30)
    proc.stderr.close()
    (sweep,) = (project / "runs" / "tiny").iterdir()
    (killed,) = folders(project, NAMES[0])
    entry = status(sweep)["runs"][0]
    assert entry["folder"] == os.path.relpath(killed, sweep) and entry["attempts"] == [entry["folder"]]
    code, out, err = cli("runs", str(sweep), "--json")
    assert code == 0, err
    assert [r["status"] for r in json.loads(out)["runs"]] == ["abandoned"] + ["pending"] * 3
    assert left_behind(project) == []  # the trainer ends with its wrapper's pipe
    record = status(sweep)  # killed between recording `running` and making the run folder
    record["runs"][1] |= {"status": "running", "folder": None}
    (sweep / "sweep.json").write_text(json.dumps(record))
    code, out, err = cli("runs", str(sweep), "--json")
    assert [r["status"] for r in json.loads(out)["runs"]][:2] == ["abandoned", "abandoned"]


def test_a_side_by_side_sweep_killed_stops_its_workers(tmp_path, monkeypatch):
    """SIGKILL to `sweep --gpus`: its workers (sessions of their own) get Ctrl-C from the kernel, so each
    run ends interrupted and no trainer trains on, unrecorded, beside the runs of a resumed sweep."""
    project = fake_project(tmp_path, monkeypatch, MATRIX, name="tiny")
    proc = two_training_side_by_side(project, "60")
    proc.kill()
    proc.wait(timeout=30)
    assert proc.stderr is not None
    proc.stderr.close()
    results = [folder / "result.json" for name in NAMES[:2] for folder in folders(project, name)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(json.loads(r.read_text())["status"] == "running" for r in results):
        time.sleep(0.2)
    assert [json.loads(r.read_text())["status"] for r in results] == ["interrupted", "interrupted"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and left_behind(project):
        time.sleep(0.2)
    assert left_behind(project) == []
