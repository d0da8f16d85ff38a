"""Recorded runs read back: the pick rule, `runs`, `show` and `pick` on run folders written in the
formats `run` writes (tests/run_folders.py)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from run_folders import dead_pid, recorded_run, sha

from artlab_kohya.cli.main import main
from artlab_kohya.experiments.pick import distance, parse_window, pick
from artlab_kohya.experiments.records import (
    EpochLoss,
    epochs_from_result,
    last_step,
    read_lock,
    read_run,
    run_status,
    summarize,
)
from artlab_kohya.spec.guide import LOSS_WINDOW

W = (0.08, 0.1)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def epochs(*losses: float | None, missing: tuple[int, ...] = ()) -> list[EpochLoss]:
    return [
        EpochLoss(e, loss, e * 10, None if e in missing else Path(f"/x/e{e}.safetensors"))
        for e, loss in enumerate(losses, 1)
    ]


# --- the rule --------------------------------------------------------------------------------------


def test_inside_the_window_the_latest_epoch():
    chosen = pick(epochs(0.15, 0.099, 0.09, 0.081, 0.07), W)
    assert chosen.chosen is not None and chosen.chosen.epoch == 4
    assert [e.epoch for e in chosen.inside] == [2, 3, 4]
    assert chosen.how == "inside the window, the latest of 3"


def test_the_window_is_closed():
    assert [e.epoch for e in pick(epochs(0.08, 0.1, 0.1000001), W).inside] == [1, 2]


def test_none_inside_the_nearest_ties_to_the_later_epoch():
    chosen = pick(epochs(0.2, 0.12, 0.06, 0.05), W)
    assert chosen.chosen is not None and chosen.chosen.epoch == 2  # 0.02 above beats 0.02-and-a-bit below
    tie = pick(epochs(0.11, 0.07), W)  # 0.01 above, 0.01 below
    assert tie.chosen is not None and tie.chosen.epoch == 2
    assert tie.how.startswith("none inside the window; nearest")
    assert math.isclose(distance(0.07, W), 0.01) and distance(0.09, W) == 0.0


def test_only_existing_checkpoints_with_a_number_are_candidates():
    chosen = pick(epochs(0.09, float("nan"), None, 0.095, missing=(4,)), W)
    assert chosen.chosen is not None and chosen.chosen.epoch == 1
    assert [e.epoch for e in chosen.candidates] == [1]
    assert pick(epochs(0.09, missing=(1,)), W).chosen is None


def test_window_parsing():
    assert parse_window("0.08:0.1") == (0.08, 0.1) == LOSS_WINDOW
    for bad in ("0.1", "0.1:0.08", "a:b", "nan:1"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_the_cli_default_window_is_the_guides():
    code, out, _ = cli("pick", "--help")
    assert code == 0 and f"{LOSS_WINDOW[0]}:{LOSS_WINDOW[1]:g}" in out and "0.08-0.1" in out


# --- recorded runs ---------------------------------------------------------------------------------


def test_epochs_from_events_match_result_json(tmp_path):
    folder = recorded_run(tmp_path, "dog", "20261128-100000-aaaaaa", [0.2, 0.12, 0.095, 0.085, 0.07])
    run = read_run(folder)
    assert [(e.epoch, e.loss, e.end_step) for e in run.epochs] == [
        (1, 0.2, 10), (2, 0.12, 20), (3, 0.095, 30), (4, 0.085, 40), (5, 0.07, 50),
    ]  # fmt: skip
    from_result = epochs_from_result(json.loads((folder / "result.json").read_text()))
    assert from_result is not None
    assert [(e.epoch, e.loss, e.checkpoint) for e in from_result] == [
        (e.epoch, e.loss, e.checkpoint) for e in run.epochs
    ]
    by_events, by_result = pick(run.epochs).chosen, pick(summarize(folder).epochs).chosen
    assert by_events is not None and by_result is not None
    assert (by_events.epoch, by_events.loss, by_events.checkpoint) == (4, 0.085, by_result.checkpoint)


def test_a_running_run_reads_its_checkpoints_from_the_events(tmp_path):
    folder = recorded_run(tmp_path, "dog", "20261128-100000-aaaaaa", [0.2, 0.09, 0.085], status="running")
    summary = summarize(folder)
    assert summary.status == "running" and [e.epoch for e in summary.epochs] == [1, 2, 3]
    assert [e.checkpoint.name for e in summary.epochs if e.checkpoint] == [
        "dog-000001.safetensors", "dog-000002.safetensors", "dog.safetensors",
    ]  # fmt: skip
    assert pick(summary.epochs).chosen.epoch == 3  # type: ignore[union-attr]


def test_abandoned_needs_a_dead_pid_on_this_host():
    assert run_status({"status": "running", "pid": dead_pid(), "host": __import__("socket").gethostname()}) == (
        "abandoned"
    )
    assert run_status({"status": "running", "pid": os.getpid(), "host": __import__("socket").gethostname()}) == (
        "running"
    )
    assert run_status({"status": "running", "pid": dead_pid(), "host": "another-host"}) == "running"
    assert run_status({"status": "running"}) == "running"  # no pid/host keys: as recorded
    assert run_status({"status": "failed", "pid": dead_pid()}) == "failed"


def test_the_lock_read_in_pieces_equals_the_whole(tmp_path):
    folder = recorded_run(tmp_path, "dog", "20261128-100000-aaaaaa", [0.1], overrides=["network.dim=32"],
                          spec_git={"commit": "c" * 40, "dirty": True})  # fmt: skip
    whole = yaml.safe_load((folder / "spec.lock.yaml").read_text())
    keys = ("model", "spec_git", "overrides", "plan", "spec")
    assert read_lock(folder, keys) == {k: whole[k] for k in keys}
    assert read_lock(folder) == whole
    scalars = read_lock(folder, ("model", "spec_git", "plan"), scalars=True)  # the fast path of `runs`
    assert scalars["model"] == whole["model"] and scalars["spec_git"] == whole["spec_git"]
    assert scalars["plan"] == {k: v for k, v in whole["plan"].items() if k != "saves"}


def test_scalars_read_back_as_yaml_wrote_them():
    from artlab_kohya.experiments.records import _scalar

    values = [None, True, False, 0, -3, 1e-4, 5e-05, 64.0, 1e20, float("inf"), "abc", "a b", "/x/y z.safetensors",
              "yes", "1e-4", "12", "0x1F", "a: b", "#x", "x #y", "'q'", '"dq"', "2026-11-28", "", " x", "x ", "é",
              "null", "~", ".inf", "-", "-x", "0123", "1_000", "0123abcdef", "1:30", "x:", "[x]", "%x"]  # fmt: skip
    for value in values:
        written = yaml.safe_dump({"k": value}, width=1000).split(": ", 1)[1].rstrip("\n")
        assert _scalar(written) == value, (value, written)


def test_epoch_events_read_fast_equal_the_full_read(tmp_path):
    from artlab_kohya.experiments.records import epochs_from_events, read_epoch_events, read_events

    folder = recorded_run(tmp_path, "dog", "20261128-100000-aaaaaa", [0.3, 0.2, 0.1], status="running")
    result = json.loads((folder / "result.json").read_text())
    full, fast = read_events(folder), read_epoch_events(folder)
    assert len(fast.steps) == 3 and len(full.steps) == 30
    assert epochs_from_events(fast, result, "dog", 10) == epochs_from_events(full, result, "dog", 10)
    with (folder / "events.jsonl").open("a") as f:  # a step written in another key order: the full read
        f.write(
            json.dumps({"type": "Step", "t": 9, "step": 31, "epoch": 4, "total": 40, "loss": 0.05, "it_s": 1}) + "\n"
        )
    assert epochs_from_events(read_epoch_events(folder), result, "dog", 10)[-1].loss == 0.05


def test_last_step_is_found_behind_a_long_tail(tmp_path):
    folder = recorded_run(tmp_path, "dog", "20261128-100000-aaaaaa", [0.2, 0.1], steps_per_epoch=3000)
    with (folder / "events.jsonl").open("a") as f:
        for i in range(2000):  # ~100 KB of other events after the last step
            f.write(json.dumps({"t": 9, "type": "LogRecord", "level": "WARNING", "message": f"w{i:04d}" * 5}) + "\n")
    step = last_step(folder)
    assert step is not None and (step.step, step.total, step.rate) == (6000, 6000, 1.25)
    assert step.loss == pytest.approx(0.1)


# --- the commands --------------------------------------------------------------------------------


def test_runs_lists_every_run_with_status_pick_and_spec_commit(tmp_path):
    root = tmp_path / "runs"
    recorded_run(root, "dog", "20261128-100000-aaaaaa", [0.2, 0.12, 0.095, 0.07],
                 spec_git={"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True})  # fmt: skip
    recorded_run(root, "cat", "20261128-110000-bbbbbb", [0.3, 0.2], status="running", pid=dead_pid())
    recorded_run(root, "cat", "20261128-120000-cccccc", [0.3], status="running", pid=os.getpid())
    recorded_run(root, "owl", "20261128-130000-dddddd", [0.3], status="failed", saved=[])
    code, out, err = cli("runs", str(root))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:8] == ["run", "status", "started", "time", "steps", "loss", "pick", "pick"]
    dog, cat1, cat2, owl = lines[1:]
    assert dog.split()[:9] == ["dog", "succeeded", "2026-11-28", "10:00", "0:05:00", "40/40", "0.0700", "e3", "0.0950"]
    assert dog.endswith("base.safetensors  01234567 dirty")
    assert cat1.split()[:2] == ["cat", "abandoned"] and cat2.split()[:2] == ["cat", "running"]
    assert owl.split()[:2] == ["owl", "failed"] and " e" not in owl.split("failed")[1].split("base")[0]
    code, out, _ = cli("runs", str(root), "--json")
    rows = json.loads(out)["runs"]
    assert [r["status"] for r in rows] == ["succeeded", "abandoned", "running", "failed"]
    assert rows[0]["pick_epoch"] == 3 and rows[0]["pick_loss"] == 0.095 and rows[0]["spec_dirty"] is True
    assert rows[0]["model"] == "base.safetensors" and rows[3]["pick_epoch"] is None


def test_runs_of_a_sweep_folder_show_its_values_as_columns(tmp_path):
    root = tmp_path / "runs"
    a = recorded_run(root, "dog-dim16", "20261128-100000-aaaaaa", [0.2, 0.09])
    sweep = root / "dog" / "sweep-20261128-100000"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(
        json.dumps(
            {
                "name": "dog",
                "matrix": ["network.dim"],
                "status": "interrupted",
                "runs": [
                    {"name": "dog-dim16", "values": {"network.dim": 16}, "status": "succeeded",
                     "folder": os.path.relpath(a, sweep), "attempts": [os.path.relpath(a, sweep)]},
                    {"name": "dog-dim32", "values": {"network.dim": 32}, "status": "pending", "folder": None},
                ],
            }
        )
    )  # fmt: skip
    for target in (sweep, root):
        code, out, _ = cli("runs", str(target))
        assert code == 0
        head, *rows = out.splitlines()
        assert "network.dim" in head.split()
        assert rows[0].split()[0] == "dog-dim16" and rows[0].split()[-2] == "16"
    code, out, _ = cli("runs", str(sweep))
    assert out.splitlines()[2].split() == ["dog-dim32", "pending", "32"]


def test_a_damaged_sweep_record_is_an_input_error_for_every_reader(tmp_path):
    sweep = tmp_path / "runs" / "dog" / "sweep-20261128-100000"
    sweep.mkdir(parents=True)
    good = {"name": "dog-dim16", "values": {"network.dim": 16}, "status": "pending", "folder": None}
    damaged = {
        "runs[0] is not a run entry with a name": {"runs": [1]},
        "runs[0].folder is not text": {"runs": [good | {"folder": 123}]},
        "runs[0].values is not a table": {"runs": [good | {"values": [16]}]},
        "runs[0].attempts is not a list of folders": {"runs": [good | {"attempts": [None]}]},
        "matrix is not a list": {"matrix": 5, "runs": [good]},
    }
    for why, record in damaged.items():
        (sweep / "sweep.json").write_text(json.dumps(record))
        for command in ("runs", "pick", "report"):
            code, _, err = cli(command, str(sweep))
            assert code == 2 and f"sweep.json is not an artlab-kohya sweep record: {why}" in err, (command, err)
        code, out, _ = cli("runs", str(tmp_path / "runs"))  # a runs root passes over it
        assert code == 0


def test_pick_of_a_sweep_with_no_run_folder_yet_names_the_window(tmp_path):
    sweep = tmp_path / "runs" / "dog" / "sweep-20261128-100000"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"runs": [{"name": "dog-dim16", "status": "pending"}]}))
    code, out, _ = cli("pick", str(sweep), "--loss", "0.05:0.2")
    assert code == 1
    assert out.splitlines() == [
        "window 0.05:0.2 (average loss per epoch)",
        f"no run of {sweep} has a run folder yet (`runs {sweep}` shows their status)",
    ]
    code, out, _ = cli("pick", str(sweep), "--json")
    assert json.loads(out)["window"] == [0.08, 0.1]


def test_runs_of_a_missing_folder_is_an_input_error(tmp_path):
    code, _, err = cli("runs", str(tmp_path / "nope"))
    assert code == 2 and "is not a folder" in err


def test_runs_without_a_dir_reads_the_runs_root_and_has_none_before_the_first_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARTLAB_KOHYA_RUNS", raising=False)
    code, out, err = cli("runs")  # a new project: no runs/ yet
    assert (code, out, err) == (0, "", "no runs under runs (no such folder yet)\n")
    code, out, _ = cli("runs", "--json")
    assert code == 0 and json.loads(out) == {"varied": [], "runs": []}
    recorded_run(tmp_path / "elsewhere", "dog", "20261128-100000-aaaaaa", [0.2, 0.09])
    monkeypatch.setenv("ARTLAB_KOHYA_RUNS", str(tmp_path / "elsewhere"))  # where `run` puts them
    code, out, err = cli("runs", "--json")
    assert code == 0, err
    assert [Path(r["folder"]).parent.name for r in json.loads(out)["runs"]] == ["dog"]


def test_show_a_run(tmp_path):
    folder = recorded_run(tmp_path / "runs", "dog", "20261128-100000-aaaaaa", [0.2, 0.095, 0.07],
                          overrides=["network.dim=16"], logs=True)  # fmt: skip
    code, out, err = cli("show", str(folder))
    assert code == 0, err
    assert out.splitlines()[0] == f"run        dog  ({folder})"
    assert "status     succeeded (exit 0), started 2026-11-28T10:00:05+00:00, 0:05:00" in out
    assert "overrides  network.dim=16" in out and "plan       30 steps, 3 epochs, 10 steps per epoch" in out
    assert "network.dim=16" in out and "sd-scripts /opt/sd-scripts (48d368fa), train_network.py" in out
    table = out.split("(pick window 0.08:0.1)\n")[1].split("\n\n")[0].splitlines()
    assert [r.split() for r in table] == [
        ["1", "10", "0.2000", "dog-000001.safetensors"],
        ["2", "20", "0.0950", "dog-000002.safetensors", "picked"],
        ["3", "30", "0.0700", "dog.safetensors"],
    ]
    assert out.strip().endswith(f"tensorboard --logdir {folder / 'logs'}")
    bare = recorded_run(tmp_path / "runs", "cat", "20261128-100000-aaaaaa", [0.2])
    code, out, _ = cli("show", str(bare))
    assert code == 0 and "tensorboard" not in out
    lock = bare / "spec.lock.yaml"  # an install outside git records no commit
    lock.write_text(lock.read_text().replace("commit: 48d368fa" + "0" * 32, "commit: null"))
    code, out, _ = cli("show", str(bare))
    assert code == 0 and "sd-scripts /opt/sd-scripts (commit unknown), train_network.py" in out


def test_pick_and_copy_a_run(tmp_path):
    folder = recorded_run(tmp_path / "runs", "dog", "20261128-100000-aaaaaa", [0.2, 0.095, 0.09, 0.07])
    code, out, err = cli("pick", str(folder), "--copy", str(tmp_path / "keep"))
    assert code == 0, err
    assert "pick: epoch 3" in out and "inside the window, the latest of 2" in out
    copy = tmp_path / "keep" / "dog-e3.safetensors"
    original = folder / "checkpoints" / "dog-000003.safetensors"
    assert copy.read_bytes() == original.read_bytes() and f"copied to {copy}" in out
    code, _, err = cli("pick", str(folder), "--copy", str(tmp_path / "keep"))
    assert code != 0 and "not overwriting" in err and copy.read_bytes() == original.read_bytes()
    code, out, _ = cli("pick", str(folder), "--loss", "0.19:0.3", "--json")
    data = json.loads(out)
    assert data["window"] == [0.19, 0.3] and data["runs"][0]["pick"]["epoch"] == 1 and data["runs"][0]["inside"] == [1]
    code, _, err = cli("pick", str(folder), "--loss", "0.3:0.1")
    assert code == 2 and "LO <= HI" in err


def test_pick_refuses_a_checkpoint_changed_since_the_run(tmp_path):
    folder = recorded_run(tmp_path / "runs", "dog", "20261128-100000-aaaaaa", [0.2, 0.09])
    final = folder / "checkpoints" / "dog.safetensors"
    before = sha(final)
    final.write_bytes(final.read_bytes() + b"tampered")
    code, _, err = cli("pick", str(folder), "--copy", str(tmp_path / "keep"))
    assert code == 1 and f"not the recorded {before[:12]}" in err
    assert not (tmp_path / "keep" / "dog-e2.safetensors").exists()


def test_pick_of_a_run_without_checkpoints(tmp_path):
    folder = recorded_run(tmp_path / "runs", "dog", "20261128-100000-aaaaaa", [0.2], saved=[], status="failed")
    code, out, _ = cli("pick", str(folder))
    assert code == 1 and "no pick: no checkpoint with an average loss" in out
    code, _, err = cli("pick", str(folder), "--copy", str(tmp_path / "keep"))
    assert code == 2 and "nothing was picked" in err


def test_a_result_whose_checkpoints_are_not_a_list_reads_as_none(tmp_path):
    folder = recorded_run(tmp_path / "runs", "dog", "20261128-100000-aaaaaa", [0.2, 0.09])
    result = json.loads((folder / "result.json").read_text())
    (folder / "result.json").write_text(json.dumps(result | {"checkpoints": 7}))
    (folder / "events.jsonl").unlink()
    for command in ("show", "pick", "report", "runs"):
        result = CliRunner().invoke(main, [command, str(folder)])
        assert result.exception is None or isinstance(result.exception, SystemExit), (command, result.exception)
    code, out, _ = cli("show", str(folder))
    assert code == 0 and "(no epoch recorded)" in out
