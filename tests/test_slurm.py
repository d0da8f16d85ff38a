"""`submit --slurm`, `runs` and `cancel` against a real SLURM: a two-node cluster on loopback
(tests/slurm_cluster.py) started once for this module and stopped after it, nothing left running.

The jobs run the stand-in install (tests/fake_kohya) through artlab-kohya's own job step, exactly as on
a cluster: a sweep of two runs to completion, a run cancelled while it trains, a run stopped at its
time limit (--time 1: SLURM's smallest; the controller checks limits every 30 s, so about 60-90 s),
a run whose trainer path does not exist on the node, a run requeued while it trains, and one run over
both nodes (--nodes 2).

Every wait is on what the test looks for (a file, a state), polled until a bound that is generous for a
loaded two-core machine; no step sleeps a fixed time and hopes SLURM was quicker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_project import fake_project
from slurm_cluster import Cluster, ClusterError, missing_programs

pytestmark = pytest.mark.slurm
LONG = 300  # seconds: the bound of a wait on what the test looks for, polled; reached only when something broke


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    missing = missing_programs()
    if missing:
        pytest.skip(f"SLURM not installed here ({', '.join(missing)} missing; scripts/ci_packages.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root (SlurmUser=root); run the tests as root")
    root = tmp_path_factory.mktemp("slurm")
    cluster = Cluster(root)
    try:
        cluster.start()
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        pytest.skip(f"the SLURM daemons could not start here: {exc}")
    yield cluster
    problems = cluster.stop()
    assert not problems, problems
    left = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the test cluster left running: {left}"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: Cluster) -> Path:
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)
    return fake_project(tmp_path, monkeypatch, name="tiny")


def artlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "artlab_kohya", *args],
        capture_output=True,
        text=True,
        timeout=LONG,
        env={**os.environ, **(env or {})},
    )


def submit(project: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    done = artlab("submit", str(project / "spec.yaml"), "--slurm", *args, env=env)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def result(folder: Path) -> dict:
    return json.loads((folder / "result.json").read_text())  # replaced atomically: never missing, never half


def wait_for(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def rows(path: Path) -> list[dict]:
    done = artlab("runs", str(path), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["runs"]


def left_behind(folder: Path, timeout: float = LONG) -> list[str]:
    """Processes with the run folder in their command line (the job's steps, the trainer), once they had
    `timeout` seconds to end (the job script's last step may still be recording when the run is final)."""
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True).stdout.split()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_sweep_of_two_runs_completes_as_a_job_array(project: Path):
    spec = project / "spec.yaml"
    spec.write_text(spec.read_text() + "matrix:\n  network.dim: [4, 8]\n")
    started = time.monotonic()
    sweep = submit(project, "--max-parallel", "2", "--time", "10")
    script = (sweep / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0,1%2" in script and "#SBATCH --time=10" in script
    data = json.loads((sweep / "sweep.json").read_text())
    job = data["slurm"]["job_id"]
    folders = [(sweep / r["folder"]).resolve() for r in data["runs"]]
    assert [f.parent.name for f in folders] == ["tiny-dim4", "tiny-dim8"]
    assert [json.loads((f / "slurm.json").read_text())["job_id"] for f in folders] == [f"{job}_0", f"{job}_1"]

    def done() -> bool:
        return all(result(f)["status"] not in ("submitted", "running") for f in folders)

    wait_for(done, LONG, "both runs ended")
    elapsed = time.monotonic() - started
    for folder in folders:
        assert result(folder)["status"] == "succeeded", (folder / "slurm.err").read_text()
        assert (folder / "checkpoints" / f"{folder.parent.name}.safetensors").is_file()
        record = json.loads((folder / "slurm.json").read_text())
        assert record["raw_job_id"] and record["attempts"][0]["node"]
    listed = wait_for(
        lambda: (r := rows(sweep)) and all((x.get("slurm") or {}).get("state") == "completed" for x in r) and r,
        LONG,
        "SLURM says completed",
    )
    for folder in folders:  # the job has ended: its step's last words are in the run's folder
        assert "job step done" in (folder / "slurm.err").read_text()  # SLURM wrote the task's output here
    assert [(r["run"], r["status"], r["slurm"]["job"]) for r in listed] == [
        ("tiny-dim4", "succeeded", f"{job}_0"),
        ("tiny-dim8", "succeeded", f"{job}_1"),
    ]
    table = artlab("runs", str(sweep)).stdout
    assert f"{job}_0 completed" in table and f"{job}_1 completed" in table
    print(f"sweep of 2 runs: {elapsed:.1f} s from submit to both ended")


def test_cancel_stops_a_running_job_and_the_run_says_so(project: Path):
    folder = submit(project, env={"FAKE_HOLD_UNTIL": str(project / "never")})
    wait_for(lambda: result(folder)["status"] == "running" and (folder / "events.jsonl").exists(), LONG, "running")
    done = artlab("cancel", str(folder))
    assert done.returncode == 0, done.stderr
    job = json.loads((folder / "slurm.json").read_text())["job_id"]
    assert f"cancelled job {job}" in done.stdout
    wait_for(lambda: result(folder)["status"] != "running", LONG, "the run recorded its end")
    assert result(folder)["status"] == "interrupted"
    row = wait_for(lambda: (r := rows(folder)) and r[0]["slurm"]["state"] == "cancelled" and r[0], LONG, "cancelled")
    assert row["status"] == "interrupted"
    assert not left_behind(folder)


def test_a_job_at_its_time_limit_ends_failed_with_that_diagnosis(project: Path):
    started = time.monotonic()
    folder = submit(project, "--time", "1", env={"FAKE_HOLD_UNTIL": str(project / "never")})
    wait_for(lambda: result(folder)["status"] not in ("submitted", "running"), 150 + LONG, "the time limit", step=1)
    elapsed = time.monotonic() - started
    record = result(folder)
    assert record["status"] == "failed", record
    assert "time limit (--time 1)" in record["diagnosis"]
    row = wait_for(lambda: (r := rows(folder)) and r[0]["slurm"]["state"] == "timeout" and r[0], LONG, "timeout")
    assert row["status"] == "failed"
    assert "DUE TO TIME LIMIT" in (folder / "slurm.err").read_text()
    assert not left_behind(folder)
    print(f"time limit: the run ended failed {elapsed:.1f} s after submit")


def test_a_trainer_missing_on_the_node_fails_the_job_clearly(project: Path):
    spec = project / "spec.yaml"
    spec.write_text(
        spec.read_text().replace(f"python: {sys.executable}", f"python: {project / 'no-such-venv/bin/python'}")
    )
    folder = submit(project)
    wait_for(lambda: result(folder)["status"] != "submitted", LONG, "the job ran")
    record = result(folder)
    assert record["status"] == "failed"
    assert f"{project / 'no-such-venv/bin/python'} does not exist on" in record["diagnosis"]
    assert "shared filesystem" in (folder / "slurm.err").read_text()


def test_a_requeued_job_resumes_from_the_saved_state(project: Path, cluster: Cluster):
    """scontrol requeue while the run trains: the job starts again in the same folder (SLURM holds a
    requeued job for two minutes; the test releases it at once), keeps the first attempt's records in
    attempt-1/ and resumes from the state folder sd-scripts saved (made by hand here: the stand-in
    trainer saves none)."""
    spec = project / "spec.yaml"
    spec.write_text(spec.read_text() + "  extra_args:\n    save_state: true\n")
    release = project / "release"  # the first attempt's trainer holds until requeued; the second, until this
    folder = submit(project, env={"FAKE_HOLD_UNTIL": str(release)})
    wait_for(lambda: result(folder)["status"] == "running" and (folder / "events.jsonl").exists(), LONG, "running")
    state = folder / "checkpoints" / "tiny-000001-state"
    state.mkdir(parents=True)
    (state / "train_state.json").write_text(json.dumps({"current_epoch": 1, "current_step": 120}))
    job = json.loads((folder / "slurm.json").read_text())["job_id"]
    done = cluster.run("scontrol", "requeue", job)
    assert done.returncode == 0, done.stderr

    def held() -> bool:  # requeued once the first attempt is gone: pending until its begin time
        return cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "PENDING"

    wait_for(held, LONG, "the job requeued")
    release.touch()
    done = cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    assert done.returncode == 0, done.stderr
    first = folder / "attempt-1" / "result.json"
    wait_for(first.exists, LONG, "the second attempt started")
    assert json.loads(first.read_text())["status"] == "interrupted"

    def second_ended() -> bool:  # result.json is the first attempt's until the second run writes its own
        now = result(folder)
        return now != result(folder / "attempt-1") and now["status"] not in ("submitted", "running")

    wait_for(second_ended, LONG, "the second attempt ended")
    assert result(folder)["status"] == "succeeded", (folder / "slurm.err").read_text()
    attempts = json.loads((folder / "slurm.json").read_text())["attempts"]
    assert [(a["restart"], a.get("resumed_from", "-")) for a in attempts] == [(0, "-"), (1, str(state))]
    assert f'resume = "{state}"' in (folder / "config.toml").read_text()
    assert f"requeued (restart 1): resuming from {state}" in (folder / "slurm.err").read_text()


def test_a_run_over_two_nodes_runs_each_machine_on_its_node(project: Path):
    """--nodes 2: one srun task a node, each its own `artlab-kohya run` with the machine count, its rank and
    machine 0's address and port from the job; machine 0 writes the run folder and saves the checkpoints in
    the output.dir both share (only machine 0 claims it), machine 1 its records in machine-1/ (the stand-in
    saves on RANK 0 only, as sd-scripts does)."""
    import yaml

    started = time.monotonic()
    loras = project / "loras"  # one output.dir for both machines, as on a shared filesystem
    folder = submit(project, "--nodes", "2", "--time", "10", "--set", f"output.dir={loras}")
    script = (folder / "job.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "srun --nodes=2 --ntasks-per-node=1" in script
    other = folder / "machine-1"

    def ended(where: Path) -> bool:
        return (where / "result.json").exists() and result(where)["status"] not in ("submitted", "running")

    wait_for(lambda: ended(folder) and ended(other), LONG, "both machines ended")
    elapsed = time.monotonic() - started
    assert result(folder)["status"] == "succeeded", (folder / "slurm.err").read_text()
    assert result(other)["status"] == "succeeded", (folder / "slurm.err").read_text()
    assert result(folder)["diagnosis"] is None
    assert result(other)["diagnosis"] == "Machine 1 of 2: its processes trained; machine 0 saves the checkpoints."
    assert sorted(p.name for p in loras.iterdir()) == ["tiny-000001.safetensors", "tiny.safetensors"]  # no claim left
    assert result(folder)["final"] == str(loras / "tiny.safetensors") and len(result(folder)["checkpoints"]) == 2
    assert (result(other)["final"], result(other)["checkpoints"], result(other)["partial"]) == (None, [], [])
    job = json.loads((folder / "slurm.json").read_text())["job_id"]
    for rank, where in enumerate((folder, other)):
        argv = yaml.safe_load((where / "spec.lock.yaml").read_text())["argv"]
        assert argv[argv.index("--num_processes") : argv.index("--num_processes") + 4] == [
            "--num_processes", "2", "--num_machines", "2"
        ]  # fmt: skip
        i = argv.index("--machine_rank")
        assert argv[i : i + 8] == [
            "--machine_rank", str(rank), "--main_process_ip", "node1",
            "--main_process_port", str(29500 + int(job) % 1000), "--rdzv_backend", "static",
        ]  # fmt: skip
        assert (where / "events.jsonl").is_file() and (where / "stdout.log").is_file()
    attempts = [json.loads((where / "slurm.json").read_text())["attempts"] for where in (folder, other)]
    assert [(a[0]["rank"], a[0]["slurm_node"]) for a in attempts] == [(0, "node1"), (1, "node2")]
    row = wait_for(lambda: (r := rows(folder)) and r[0]["slurm"]["state"] == "completed" and r[0], LONG, "completed")
    assert (row["status"], row["slurm"]["job"]) == ("succeeded", job)
    assert not left_behind(folder)
    print(f"two nodes: {elapsed:.1f} s from submit to both machines ended")


@pytest.mark.engine
def test_the_real_trainer_runs_over_two_nodes(engine, cluster: Cluster, tmp_path: Path, images):
    """The real sd-scripts over both nodes, one CPU process a machine (gloo), through `submit --nodes 2`: the
    run of tests/test_engine_machines.py (10 images at 64 px, batch 2: 3 steps on each machine), with the
    machine count, ranks and port from the job. The node names do not resolve here, so the spec gives
    machine 0's address; accelerate's MULTI_CPU needs the shim that test explains."""
    import yaml
    from test_engine_machines import two_machine_project

    two_machine_project(engine, tmp_path, images, "  main_process_ip: 127.0.0.1\n")
    env = {  # sbatch hands the job this environment (--export=ALL, its default)
        **cluster.env,
        "ARTLAB_KOHYA_TOKENIZERS": engine["ENGINE_TOKENIZERS"],
        "ARTLAB_KOHYA_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(tmp_path / "shim"),
    }
    started = time.monotonic()
    folder = submit(tmp_path, "--nodes", "2", "--time", "30", "--ignore-dataset-errors", env=env)
    other = folder / "machine-1"

    def ended(where: Path) -> bool:
        return (where / "result.json").exists() and result(where)["status"] not in ("submitted", "running")

    wait_for(lambda: ended(folder) and ended(other), 1500, "both machines ended", step=2)
    elapsed = time.monotonic() - started
    main, second = result(folder), result(other)
    assert (main["status"], second["status"]) == ("succeeded", "succeeded"), (folder / "slurm.err").read_text()[-4000:]
    assert Path(main["final"]).name == "two.safetensors" and Path(main["final"]).is_file()
    assert "machine 0 saves the checkpoints" in second["diagnosis"]
    job = json.loads((folder / "slurm.json").read_text())["job_id"]
    for rank, where in enumerate((folder, other)):
        argv = yaml.safe_load((where / "spec.lock.yaml").read_text())["argv"]
        i = argv.index("--machine_rank")
        assert argv[i : i + 6] == [
            "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
            "--main_process_port", str(29500 + int(job) % 1000),
        ]  # fmt: skip
        events = [json.loads(line) for line in (where / "events.jsonl").read_text().splitlines()]
        summary = next(e for e in events if e["type"] == "TrainingSummary")
        assert summary["total_steps"] == 3  # the trainer's own count on each machine: 5 batches over 2 processes
        assert [e["step"] for e in events if e["type"] == "Step"][-1] == 3
    attempts = [json.loads((where / "slurm.json").read_text())["attempts"] for where in (folder, other)]
    assert [(a[0]["rank"], a[0]["slurm_node"]) for a in attempts] == [(0, "node1"), (1, "node2")]
    assert not left_behind(folder)
    print(f"the real trainer over two nodes: {elapsed:.0f} s from submit to both machines ended")
