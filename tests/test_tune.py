"""`tune` end to end against the stand-in install (tests/fake_kohya), nothing of ours patched: candidates
run as real processes, one slower, one faster, one that hangs past the time bound; the choice is cached and
`launch.profile: fast` then starts from it. Also the startup phases a run records from the trainer's output."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_project import fake_project

from artlab_kohya.build.speed import read_tuned
from artlab_kohya.cli.main import main
from artlab_kohya.errors import InputError
from artlab_kohya.experiments.tune import Candidate, Measured, choose, parse_candidate


def test_tune_picks_the_fastest_finished_candidate_and_fast_starts_from_it(tmp_path: Path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.chdir(project)
    # seconds each candidate's trainer takes to replay the run (120 steps): cudnn twice as fast, compile hangs
    monkeypatch.setenv(
        "FAKE_DURATION_FOR", json.dumps({"default": 4, "workers8": 3, "cudnn": 2, "compile": 600, "slow": 8})
    )
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["tune", "spec.yaml", "--steps", "10", "--timeout", "25", "--candidate", "slow:training.workers=0"],
        catch_exceptions=False,
    )
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    folder = Path(result.output.split("tune folder: ")[1].strip())
    record = json.loads((folder / "tune.json").read_text())
    status = {c["name"]: c["status"] for c in record["candidates"]}
    assert status == {"default": "ok", "cudnn": "ok", "cudnn-workers8": "ok", "compile": "timeout", "slow": "ok"}
    rates = {c["name"]: c["images_per_s"] for c in record["candidates"]}
    assert rates["cudnn"] > 1.5 * rates["default"]
    assert record["chosen"] == "cudnn"
    compile_ = next(c for c in record["candidates"] if c["name"] == "compile")
    assert "stopped after 25 s" in compile_["note"]
    compile_result = json.loads((Path(compile_["folder"]) / "result.json").read_text())
    assert compile_result["status"] == "interrupted"  # the stopped candidate's run still ended in a final state
    assert took < 150
    # the cache: this card (none: cpu), family, resolution, network, batch -> the winner's settings
    cached = read_tuned()
    assert list(cached) == ["cpu|sd15|512|lora4|b1"]
    assert cached["cpu|sd15|512|lora4|b1"]["settings"] == {"launch.cudnn_benchmark": True}
    assert "chosen: cudnn for cpu|sd15|512|lora4|b1, cached in" in result.output
    # plan with profile fast starts from it
    plan = CliRunner().invoke(main, ["plan", "spec.yaml", "--set", "launch.profile=fast", "--json"])
    speed = json.loads(plan.output[plan.output.index("{") :])["speed"]
    assert {"setting": "launch.cudnn_benchmark", "value": True, "why": speed["choices"][-1]["why"]} in speed["choices"]
    assert speed["tuned"]["candidate"] == "cudnn"


def test_the_default_wins_unless_beaten_by_three_percent():
    def m(name, ips):
        return Measured(Candidate(name, (), ""), "ok", images_per_s=ips)

    assert choose([m("default", 10.0), m("cudnn", 10.2)]).candidate.name == "default"
    assert choose([m("default", 10.0), m("cudnn", 10.4)]).candidate.name == "cudnn"
    assert choose([Measured(Candidate("x", (), ""), "timeout")]) is None


def test_a_candidate_of_ones_own():
    c = parse_candidate("w8:training.workers=8,launch.cudnn_benchmark=true")
    assert c.overrides == ("training.workers=8", "launch.cudnn_benchmark=true")
    assert parse_candidate("plain:").overrides == ()
    for bad in ("bad name:x=1", "bad", ":x=1"):
        with pytest.raises(InputError, match="NAME:path=value"):
            parse_candidate(bad)
    with pytest.raises(InputError, match="'training.workers' is not path=value"):
        parse_candidate("x:training.workers")


def test_bad_candidates_are_refused_before_anything_trains(tmp_path: Path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.chdir(project)
    for candidate, said in (
        ("x:training.workers=-1", "--candidate x: training.workers=-1: training.workers: must be at least 0"),
        ("x:launch.profile=turbo", "launch.profile: must be one of 'default', 'fast' (got 'turbo')"),
        ("bad", "NAME:path=value"),
    ):
        result = CliRunner().invoke(main, ["tune", "spec.yaml", "--only-mine", "--candidate", candidate])
        assert result.exit_code == 2, result.output
        assert said in result.output
        assert "tune:" not in result.output  # nothing started
    assert not (project / "runs").exists()
    twice = CliRunner().invoke(main, ["tune", "spec.yaml", "--candidate", "default:"])
    assert twice.exit_code == 2 and "the name default is used twice" in twice.output


def test_a_candidate_that_changes_learning_is_measured_not_chosen(tmp_path: Path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.chdir(project)
    monkeypatch.setenv("FAKE_DURATION_FOR", json.dumps({"big": 1, "w0": 4}))
    result = CliRunner().invoke(
        main,
        ["tune", "spec.yaml", "--steps", "10", "--only-mine"]
        + ["--candidate", "big:dataset.resolution=256", "--candidate", "w0:training.workers=0"],
    )
    assert result.exit_code == 0, result.output
    assert "--candidate big: dataset.resolution change(s) what is learned" in result.output
    assert "chosen: w0" in result.output  # big was faster, but is not a speed setting


def test_tune_stopped_by_sigterm_stops_its_candidate(tmp_path: Path, monkeypatch):
    """kill, timeout, scancel: the running candidate's trainer is stopped, not orphaned; exit 143."""
    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_DURATION", "300")
    proc = subprocess.Popen(
        [sys.executable, "-m", "artlab_kohya", "tune", "spec.yaml", "--only-mine", "--candidate", "slow:"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    events = []
    while time.monotonic() < deadline and not events:
        events = list((project / "runs").glob("tiny_lora/tune-*/slow/*/events.jsonl"))
        time.sleep(0.2)
    assert events, "the candidate never started"
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output
    assert "tune stopped (SIGTERM)" in output
    result = json.loads((events[0].parent / "result.json").read_text())
    assert result["status"] == "interrupted"
    left = subprocess.run(["pgrep", "-f", str(events[0].parent)], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a trainer of the stopped candidate is still running"
    record = json.loads(next((project / "runs").glob("tiny_lora/tune-*/tune.json")).read_text())
    assert record["stopped"].startswith("interrupted")


def test_a_run_records_where_the_time_to_its_first_step_went(tmp_path: Path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.chdir(project)
    monkeypatch.setenv("FAKE_DURATION", "3")
    result = CliRunner().invoke(main, ["run", "spec.yaml", "--plain"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = next((project / "runs" / "tiny_lora").iterdir())
    startup = json.loads((folder / "result.json").read_text())["startup"]
    phases = [p["phase"] for p in startup["phases"]]
    # the lora transcript's own lines, in order (it caches latents, creates a LoRA, uses AdamW)
    assert phases == [  # noqa
        "python and imports",
        "settings and dataset",
        "model load",
        "latent caching",
        "network",
        "optimizer and prepare",
        "first step",
    ]
    assert all(p["s"] is not None and p["s"] >= 0 for p in startup["phases"])
    assert sum(p["s"] for p in startup["phases"]) == pytest.approx(startup["first_step_s"], abs=0.05)
    assert "first step after" in result.output


def test_batch_doubles_until_a_batch_fails_and_says_what_it_would_mean(tmp_path: Path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.chdir(project)
    # the stand-in's speed per run: batch 2 is faster, batch 4 "runs out of memory" (the torch OOM transcript)
    monkeypatch.setenv("FAKE_DURATION_FOR", json.dumps({"batch2": 2, "mine": 4}))
    monkeypatch.setenv("FAKE_TRANSCRIPT_FOR", json.dumps({"batch4": "torch_oom_nan"}))
    result = CliRunner().invoke(
        main,
        ["tune", "spec.yaml", "--steps", "10", "--only-mine", "--candidate", "mine:", "--batch", "--no-cache"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    folder = Path(result.output.split("tune folder: ")[1].strip())
    record = json.loads((folder / "tune.json").read_text())
    batches = [(b["name"], b["batch_size"], b["status"]) for b in record["batches"]]
    assert batches == [("mine-batch2", 2, "ok"), ("mine-batch4", 4, "failed")]
    assert "effective batch 2 instead of 1" in record["batches"][0]["consequence"]
    assert "nothing is changed for you" in result.output
    assert "not cached: --no-cache" in result.output
    assert read_tuned() == {}


def test_tune_says_where_a_long_candidate_is(tmp_path: Path, monkeypatch):
    from artlab_kohya.experiments import tune as tune_module

    project = fake_project(tmp_path, monkeypatch)
    monkeypatch.chdir(project)
    monkeypatch.setattr(tune_module, "PROGRESS_EVERY", 0.5)
    monkeypatch.setenv("FAKE_DURATION", "4")
    result = CliRunner().invoke(main, ["tune", "spec.yaml", "--only-mine", "--candidate", "one:", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert re.search(r"tune: one: step \d+/120", result.output), result.output
