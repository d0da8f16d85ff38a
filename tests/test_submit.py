"""The SLURM pieces that need no cluster: the job script (`submit --dry-run`), the job's step on a
folder made at submission (run with SLURM's variables set, as a node would), a requeue that starts over
or resumes from sd-scripts' state, the launch values a job over several nodes gets, and `runs` and
`cancel` where SLURM's commands are absent. tests/test_slurm.py does the same against a real SLURM."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner
from fake_project import fake_project

from artlab_kohya.cli.main import main
from artlab_kohya.experiments import slurm_job
from artlab_kohya.experiments.slurm import ClusterOptions, _write, plan_submission
from artlab_kohya.spec import load_spec
from artlab_kohya.spec.model import LaunchSpec


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_dry_run_prints_a_readable_array_script(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch, extra="matrix:\n  network.dim: [4, 8]\n", name="dog")
    code, out, err = cli(
        "submit", str(project / "spec.yaml"), "--slurm", "--dry-run", "--partition", "gpu", "--time", "2:00:00",
        "--account", "art", "--gpus-per-job", "2", "--max-parallel", "1", "--sbatch-arg", "--mem=32G",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch = [line for line in lines if line.startswith("#SBATCH ")]
    sweep = project / "runs" / "dog"
    assert sbatch[0] == "#SBATCH --job-name=artlab-dog"
    assert sbatch[1].startswith(f"#SBATCH --output={sweep}/sweep-") and sbatch[1].endswith("/task-%a/slurm.out")
    assert sbatch[3:] == [
        "#SBATCH --array=0,1%1", "#SBATCH --open-mode=append", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=4", "#SBATCH --time=2:00:00", "#SBATCH --partition=gpu",
        "#SBATCH --account=art", "#SBATCH --mem=32G",
    ]  # fmt: skip
    assert f"ARTLAB_PYTHON={sys.executable}" in out
    assert any(
        line.startswith(f"  0) RUN={project}/runs/dog-dim4/") and "# dog-dim4: network.dim=4" in line for line in lines
    )
    assert "python -m artlab_kohya.experiments.slurm_job" not in out  # the step names the Python above
    assert '"$ARTLAB_PYTHON" -m artlab_kohya.experiments.slurm_job "$RUN"' in out
    assert "srun" not in out
    assert not (project / "runs").exists()  # a dry run writes nothing
    code, out, _ = cli("submit", str(project / "spec.yaml"), "--slurm", "--dry-run", "--nodes", "2")
    assert "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1 " in out


def test_slurm_commands_absent(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _, err = cli("submit", str(project / "spec.yaml"), "--slurm")
    assert code == 1 and "sbatch not found: SLURM's commands are not installed" in err
    assert not (project / "runs" / "tiny_lora").exists()  # nothing left of a refused submission
    folder = made_folder(project)
    code, out, err = cli("runs", str(folder.parent.parent), "--json")
    assert code == 0 and err.count("squeue not found") == 1  # said once, however many runs
    assert json.loads(out)["runs"][0]["slurm"] == {"job": "41", "state": None, "said": None}
    code, _, err = cli("cancel", str(folder))
    assert code == 1 and "scancel not found" in err


def made_folder(project: Path, extra: tuple[str, ...] = ()) -> Path:
    """A run folder as `submit` makes it, with job id 41, without sbatch."""
    submission = plan_submission(load_spec(project / "spec.yaml"), extra, ClusterOptions(), project / "runs")
    _write(submission)
    folder = submission.runs[0].folder
    record = json.loads((folder / "slurm.json").read_text())
    (folder / "slurm.json").write_text(json.dumps(record | {"job_id": "41"}))
    return folder


def job_env(monkeypatch, **more: str) -> None:
    for key in ("SLURM_RESTART_COUNT", "SLURM_NNODES", "SLURM_NODEID", "SLURM_JOB_NODELIST", "SLURMD_NODENAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    for key, value in more.items():
        monkeypatch.setenv(key, value)


def test_the_job_step_runs_in_the_folder_and_a_requeue_starts_over(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    folder = made_folder(project)
    assert json.loads((folder / "result.json").read_text())["status"] == "submitted"
    job_env(monkeypatch)
    assert slurm_job.main([str(folder)]) == 0
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "succeeded" and (folder / "checkpoints" / "tiny_lora.safetensors").is_file()
    assert list((project / "runs" / "tiny_lora").iterdir()) == [folder]  # no second folder
    record = json.loads((folder / "slurm.json").read_text())
    assert record["raw_job_id"] == "41" and [a["restart"] for a in record["attempts"]] == [0]

    job_env(monkeypatch, SLURM_RESTART_COUNT="1")  # SLURM requeued the job: the script runs again
    assert slurm_job.main([str(folder)]) == 0
    assert json.loads((folder / "attempt-1" / "result.json").read_text())["status"] == "succeeded"
    assert (folder / "attempt-1" / "events.jsonl").is_file() and (folder / "events.jsonl").is_file()
    attempts = json.loads((folder / "slurm.json").read_text())["attempts"]
    assert [(a["restart"], a.get("resumed_from", "-")) for a in attempts] == [(0, "-"), (1, None)]


def test_a_requeue_resumes_from_the_newest_state_when_the_spec_saves_state(tmp_path, monkeypatch, capfd):
    project = fake_project(tmp_path, monkeypatch, extra="  extra_args:\n    save_state: true\n")
    folder = made_folder(project)
    job_env(monkeypatch)
    assert slurm_job.main([str(folder)]) == 0
    for name, step in (("tiny_lora-000001-state", 120), ("tiny_lora-step00000100-state", 100)):
        (folder / "checkpoints" / name).mkdir()
        (folder / "checkpoints" / name / "train_state.json").write_text(json.dumps({"current_step": step}))
    job_env(monkeypatch, SLURM_RESTART_COUNT="1")
    assert slurm_job.main([str(folder)]) == 0
    state = folder / "checkpoints" / "tiny_lora-000001-state"
    lock = yaml.safe_load((folder / "spec.lock.yaml").read_text())
    assert lock["spec"]["kohya"]["extra_args"] == {"save_state": True, "resume": str(state)}
    assert f'resume = "{state}"' in (folder / "config.toml").read_text()
    assert f"requeued (restart 1): resuming from {state}" in capfd.readouterr().err


def test_each_machine_of_a_requeued_job_keeps_its_records_and_resumes_from_machine_0s_state(tmp_path, monkeypatch):
    """Machine 1 of a two-node job, requeued: its earlier records move to machine-1/attempt-1/, and it resumes
    from the state machine 0 saved (every process of the run must load the same state)."""
    extra = "  extra_args:\n    save_state: true\nlaunch:\n  main_process_ip: 10.0.0.1\n"
    project = fake_project(tmp_path, monkeypatch, extra=extra)
    folder = made_folder(project)
    nodes = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "node[1-2]", "SLURMD_NODENAME": "node2"}
    job_env(monkeypatch, **nodes)
    assert slurm_job.main([str(folder)]) == 0
    other = folder / "machine-1"
    assert json.loads((other / "result.json").read_text())["status"] == "succeeded"
    state = folder / "checkpoints" / "tiny_lora-000001-state"  # as machine 0 saves it
    state.mkdir(parents=True)
    (state / "train_state.json").write_text(json.dumps({"current_step": 120}))
    job_env(monkeypatch, SLURM_RESTART_COUNT="1", **nodes)
    assert slurm_job.main([str(folder)]) == 0
    assert f'resume = "{state}"' in (other / "config.toml").read_text()
    assert "--machine_rank\n- '1'" in (other / "spec.lock.yaml").read_text()
    assert json.loads((other / "attempt-1" / "result.json").read_text())["status"] == "succeeded"
    assert (other / "attempt-1" / "events.jsonl").is_file() and (other / "events.jsonl").is_file()
    attempts = json.loads((other / "slurm.json").read_text())["attempts"]
    assert [(a["rank"], a["slurm_node"], a["restart"], a.get("resumed_from", "-")) for a in attempts] == [
        (1, "node2", 0, "-"),
        (1, "node2", 1, str(state)),
    ]
    assert json.loads((folder / "slurm.json").read_text())["attempts"] == []  # machine 0's record is its own


def test_a_job_over_several_nodes_sets_each_machines_launch_values():
    launch = LaunchSpec()
    env = {"SLURM_JOB_ID": "1234", "SLURM_NNODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    assert slurm_job.machine_overrides(env, launch, "gpu07") == (
        "launch.num_machines=2", "launch.machine_rank=1", 'launch.main_process_ip="gpu07"', "launch.main_process_port=29734",
    )  # fmt: skip
    assert slurm_job.machine_overrides({"SLURM_NNODES": "1"}, launch, None) == ()


def test_a_failure_before_launch_is_recorded_in_the_folder(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    folder = made_folder(project)
    (project / "base.safetensors").unlink()  # the model is gone by the time the job starts
    job_env(monkeypatch)
    assert slurm_job.main([str(folder)]) == 1
    result = json.loads((folder / "result.json").read_text())
    assert result["status"] == "failed" and "base.safetensors" in result["diagnosis"]


def test_after_the_step_a_run_left_unfinished_is_recorded_failed(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    folder = made_folder(project)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no scontrol: SLURM cannot say why
    job_env(monkeypatch)
    (folder / "machine-1").mkdir()  # another machine's run, killed while it ran; a third that ended
    (folder / "machine-1" / "result.json").write_text('{"status": "running"}')
    (folder / "machine-2").mkdir()
    (folder / "machine-2" / "result.json").write_text('{"status": "succeeded"}')
    assert slurm_job.main(["--after", str(folder), "137"]) == 0
    for where in (folder, folder / "machine-1"):
        result = json.loads((where / "result.json").read_text())
        assert result["status"] == "failed" and result["exit_code"] == 137
        assert "ended with status 137 before the run recorded its end" in result["diagnosis"]
    assert json.loads((folder / "machine-2" / "result.json").read_text()) == {"status": "succeeded"}


def test_where_a_run_ran_is_not_part_of_the_skip_hash():
    from artlab_kohya.experiments.sweep import spec_sha256

    here = {"launch": {"num_processes": 2, "num_machines": 2, "gpu_ids": None, "machine_rank": 0}}
    there = {"launch": {"num_processes": 2, "num_machines": 2, "gpu_ids": [0, 1], "machine_rank": 0}}
    there["launch"] |= {"main_process_ip": "gpu07", "main_process_port": 29734}
    assert spec_sha256(here) == spec_sha256(there)
    assert spec_sha256(here) != spec_sha256({"launch": {"num_processes": 2, "num_machines": 1}})
