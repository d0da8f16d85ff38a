"""report.html from run folders: what is gathered into html.py's dataclasses (steps, epochs, pick,
parameters, ss_* metadata, sd-scripts' sample names), where the page may go, and how fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner
from run_folders import recorded_run

from artlab_kohya.cli.main import main
from artlab_kohya.experiments.records import read_run
from artlab_kohya.experiments.report import find_samples, run_report, sample_prompts, write_run_report

PROMPTS = ["sks dog on a beach --s 2", "sks dog, portrait"]


def run_with_samples(root: Path, **more) -> Path:
    return recorded_run(
        root, "dog", "20261128-100000-aaaaaa", [0.2, 0.095, 0.07], prompts=PROMPTS,
        samples=[(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (3, 0), (3, 1)], overrides=["network.dim=16"], **more,
    )  # fmt: skip


def test_what_a_run_report_holds(tmp_path):
    folder = run_with_samples(tmp_path / "runs")
    run = read_run(folder)
    report = run_report(run, folder)
    assert report.name == "dog" and report.status == "succeeded" and report.window == (0.08, 0.1)
    assert len(report.steps) == 30 and report.steps[0][0] == 1
    assert [(r.epoch, r.avg_loss, r.checkpoint, r.picked, r.in_window, r.end_step) for r in report.epochs] == [
        (1, 0.2, "dog-000001.safetensors", False, False, 10),
        (2, 0.095, "dog-000002.safetensors", True, True, 20),
        (3, 0.07, "dog.safetensors", False, False, 30),
    ]
    assert report.checkpoint_metadata["dog.safetensors"] == {
        "ss_output_name": "dog",
        "ss_epoch": "3",
        "ss_network_dim": "16",
    }
    assert report.params["model"] == "base.safetensors" and report.params["network.dim"] == "16"
    assert report.params["optimizer.unet_lr"] == "1e-4" and report.params["sd-scripts"] == "48d368fa"
    assert [(s.epoch, s.prompt_index, s.prompt) for s in report.samples] == [
        (0, 0, PROMPTS[0]), (0, 1, PROMPTS[1]), (1, 0, PROMPTS[0]), (1, 1, PROMPTS[1]),
        (2, 0, PROMPTS[0]), (3, 0, PROMPTS[0]), (3, 1, PROMPTS[1]),
    ]  # fmt: skip
    assert report.samples[-1].image_href == "checkpoints/sample/dog_e000003_01_20261128100003.png"


def test_sample_names_as_sd_scripts_writes_them(tmp_path):
    folder = run_with_samples(tmp_path / "runs")
    sample = folder / "checkpoints" / "sample"
    (sample / "dog_e000001_00_20261128120000_1234.png").write_bytes(b"later, with a seed")  # written again
    (sample / "other_e000001_00_20261128100001.png").write_bytes(b"another run's name")
    (sample / "dog_e000001_00_20261128100001.jpg").write_bytes(b"not a png")
    found = {(e, i): p.name for e, i, p in find_samples(read_run(folder))}
    assert found[(1, 0)] == "dog_e000001_00_20261128120000_1234.png"
    assert len(found) == 7  # the step sample dog_000005_00_... is not an epoch's


def test_prompts_are_numbered_as_sd_scripts_reads_prompts_txt():
    spec = {"sample": {"prompts": ["a", "", "# a comment", "b\nc"]}}
    assert sample_prompts(spec) == ["a", "b", "c"]


def test_a_page_written_elsewhere_links_and_inlines(tmp_path):
    folder = run_with_samples(tmp_path / "runs")
    code = CliRunner().invoke(main, ["report", str(folder), "-o", str(tmp_path / "my pages" / "dog.html")])
    assert code.exit_code == 0, code.output
    page = (tmp_path / "my pages" / "dog.html").read_text()
    assert 'src="../runs/dog/20261128-100000-aaaaaa/checkpoints/sample/dog_e000001_00_20261128100001.png"' in page
    code = CliRunner().invoke(main, ["report", str(folder), "--self-contained", "-o", str(tmp_path / "inline.html")])
    assert code.exit_code == 0
    page = (tmp_path / "inline.html").read_text()
    assert page.count('src="data:image/png;base64,') == 7 and "checkpoints/sample" not in page


def test_report_of_a_sweep_needs_a_run_or_sweep_folder(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "neither a run folder nor a sweep folder" in result.stderr


def test_a_10000_step_run_reports_in_under_a_second(tmp_path):
    folder = recorded_run(tmp_path / "runs", "big", "20261128-100000-aaaaaa", [0.2 - 0.006 * e for e in range(20)],
                          steps_per_epoch=500)  # fmt: skip
    write_run_report(folder)  # imports and caches warm, as for a second look
    start = time.perf_counter()
    page = write_run_report(folder)
    elapsed = time.perf_counter() - start
    assert elapsed <= 1.0, elapsed
    text = page.read_text()
    points = int(text.split('data-points="')[1].split('"')[0])
    assert points <= 4 * 560 and json.loads((folder / "result.json").read_text())["status"] == "succeeded"
