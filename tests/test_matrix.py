"""A spec's matrix: its syntax, the runs it expands into, every problem located at its entry, and what
`plan`, `check` and `run` make of a spec that has one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from artlab_kohya.cli.main import main
from artlab_kohya.experiments.matrix import expand, format_value, load_variants
from artlab_kohya.spec import SpecError, load_spec

BASE = """\
model:
  source: base.safetensors
  family: sd15
dataset:
  resolution: 512
  buckets:
    enabled: false
  subsets:
    - path: img/10_sks
network:
  type: lora
  dim: 16
  alpha: 8
training:
  epochs: 2
output:
  name: dog
"""


@pytest.fixture
def project(tmp_path, images):
    images(tmp_path / "img/10_sks", [(512, 512)] * 16)
    (tmp_path / "base.safetensors").write_bytes(b"")
    return tmp_path


def spec(project: Path, matrix: str, base: str = BASE) -> Path:
    path = project / "spec.yaml"
    path.write_text(base + "matrix:\n" + textwrap.indent(textwrap.dedent(matrix), "  "))
    return path


def issues(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(SpecError) as caught:
        loaded = load_spec(path)
        load_variants(loaded, expand(loaded), overrides)
    return [str(i) for i in caught.value.issues]


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_without_a_matrix_nothing_changes(project):
    path = project / "spec.yaml"
    path.write_text(BASE)
    loaded = load_spec(path)
    assert loaded.matrix is None and expand(loaded) is None


def test_the_base_spec_validates_without_its_matrix(project):
    loaded = load_spec(spec(project, "network.dim: [32, 64]\n"))
    assert loaded.spec.network.dim == 16 and "matrix" not in loaded.data
    assert loaded.matrix == {"network.dim": [32, 64]}
    assert loaded.matrix_lines[("network.dim",)] == 19 and loaded.matrix_lines[("network.dim", 1)] == 19


def test_cartesian_product_named_runs(project):
    loaded = load_spec(spec(project, "network.dim: [32, 64]\noptimizer.unet_lr: [1.0e-4, 5.0e-5]\n"))
    matrix = expand(loaded)
    assert matrix is not None and matrix.keys == ["network.dim", "optimizer.unet_lr"]
    names = [v.name for v in matrix.variants]
    assert names == [
        "dog-dim32-unet_lr1e-4",
        "dog-dim32-unet_lr5e-5",
        "dog-dim64-unet_lr1e-4",
        "dog-dim64-unet_lr5e-5",
    ]
    assert matrix.variants[1].overrides == (
        "network.dim=32",
        "optimizer.unet_lr=5e-05",
        'output.name="dog-dim32-unet_lr5e-5"',
    )
    runs, warnings = load_variants(loaded, matrix)
    assert [(r.spec.network.dim, r.spec.optimizer.unet_lr, r.spec.output.name) for r in runs] == [
        (32, 1e-4, names[0]),
        (32, 5e-5, names[1]),
        (64, 1e-4, names[2]),
        (64, 5e-5, names[3]),
    ]
    assert [o.text for o in runs[0].overrides][-1] == f'output.name="{names[0]}"'


def test_zip_moves_values_together(project):
    loaded = load_spec(
        spec(
            project,
            """\
            training.seed: [1, 2]
            zip:
              network.dim: [32, 64]
              network.alpha: [16, 32]
            """,
        )
    )
    matrix = expand(loaded)
    assert matrix is not None
    assert [v.name for v in matrix.variants] == [
        "dog-seed1-dim32-alpha16",
        "dog-seed1-dim64-alpha32",
        "dog-seed2-dim32-alpha16",
        "dog-seed2-dim64-alpha32",
    ]
    runs, _ = load_variants(loaded, matrix)
    assert [(r.spec.network.dim, r.spec.network.alpha) for r in runs[:2]] == [(32, 16.0), (64, 32.0)]


def test_several_zip_groups_as_a_list(project):
    loaded = load_spec(
        spec(
            project,
            """\
            zip:
              - {network.dim: [32, 64], network.alpha: [16, 32]}
              - {training.epochs: [2, 4], training.save_every_n_epochs: [1, 2]}
            """,
        )
    )
    matrix = expand(loaded)
    assert matrix is not None and len(matrix.variants) == 4 and len(matrix.axes) == 2


def test_a_bad_value_is_located_at_its_matrix_entry(project):
    path = spec(project, "network.dim: [32, 0]\noptimizer.unet_lr: [1.0e-4, 5.0e-5]\n")
    assert issues(path) == ["spec.yaml:19: matrix.network.dim[1]: must be at least 1 (got 0)"]


def test_a_list_index_the_spec_lacks_is_located_at_its_matrix_entry(project):
    path = spec(project, "dataset.subsets[3].repeats: [1, 2]\n")
    assert issues(path) == [
        f"spec.yaml:19: matrix.dataset.subsets[3].repeats[{i}]: dataset.subsets[3] does not exist in the spec"
        for i in (0, 1)
    ]


def test_values_a_run_cannot_carry_are_located_errors(project):
    path = spec(project, "training.seed: [2020-01-01, !!binary aGVsbG8=, 3]\noptimizer.unet_lr: [1.0e-4, .inf]\n")
    with pytest.raises(SpecError) as caught:
        expand(load_spec(path))
    assert [str(i) for i in caught.value.issues] == [
        "spec.yaml:19: matrix.training.seed[0]: must be text, a number, true/false, a list or a table "
        "(got date 2020-01-01)",
        "spec.yaml:19: matrix.training.seed[1]: must be text, a number, true/false, a list or a table "
        "(got bytes b'hello')",
        "spec.yaml:20: matrix.optimizer.unet_lr[1]: must be a finite number (got inf)",
    ]
    assert cli("check", str(path))[0] == 2


def test_block_lists_locate_each_value_on_its_line(project):
    path = spec(project, "network.type:\n  - lora\n  - lorra\n")
    (issue,) = issues(path)
    assert issue.startswith("spec.yaml:21: matrix.network.type[1]: ") and "did you mean 'lora'" in issue


def test_syntax_errors_are_located(project):
    path = spec(
        project,
        """\
        network.dim: 32
        optimizer..lr: [1]
        output.name: [a, b]
        zip:
          network.alpha: [1, 2, 3]
          training.seed: [1, 2]
        """,
    )
    with pytest.raises(SpecError) as caught:
        expand(load_spec(path))
    assert [str(i) for i in caught.value.issues] == [
        "spec.yaml:19: matrix.network.dim: must be a list with one value per run, e.g. [32, 64] (got '32')",
        "spec.yaml:20: matrix.optimizer..lr: cannot read the path 'optimizer..lr' "
        "(write it like dataset.subsets[0].repeats)",
        "spec.yaml:21: matrix.output.name: output.name cannot vary in a matrix (the sweep names each run)",
        "spec.yaml:24: matrix.zip.training.seed: has 2 values; network.alpha in the same zip group has 3",
    ]


def test_a_zip_group_of_one_list_is_refused(project):
    path = spec(project, "zip:\n  - {network.dim: [32, 64]}\n  - {network.alpha: [16, 32]}\n")
    with pytest.raises(SpecError) as caught:
        expand(load_spec(path))
    assert "a zip group is a table of two or more" in str(caught.value)
    assert [i.where for i in caught.value.issues] == ["spec.yaml:20", "spec.yaml:21"]


def test_a_key_varied_twice_and_too_many_runs(project):
    path = spec(project, "network.dim: [1, 2]\nzip:\n  network.dim: [3, 4]\n  network.alpha: [1, 2]\n")
    with pytest.raises(SpecError, match="network.dim is already varied by matrix entry network.dim"):
        expand(load_spec(path))
    big = "\n".join(f"training.seed: [{', '.join(map(str, range(11)))}]".replace("seed", k) for k in ("seed",))
    big += "\nnetwork.dim: [" + ", ".join(map(str, range(1, 11))) + "]"
    big += "\nnetwork.alpha: [" + ", ".join(map(str, range(1, 11))) + "]\n"
    with pytest.raises(SpecError, match="expands to 1,100 runs; a matrix may have at most 1,000"):
        expand(load_spec(spec(project, big)))


def test_names_that_would_clash_are_refused(project):
    path = spec(project, "optimizer.unet_lr: [1.0e-4, 0.0001]\n")
    with pytest.raises(SpecError, match=r"runs 1 and 2 have the same values \(dog-unet_lr1e-4\)"):
        expand(load_spec(path))
    path = spec(project, "dataset.subsets[0].path: [img/a b, img/a_b]\n")
    with pytest.raises(SpecError, match="would both be named dog-pathimg_a_b"):
        expand(load_spec(path))


def test_same_last_name_uses_the_whole_path(project):
    loaded = load_spec(spec(project, "network.dim: [4]\nnetwork.args.dim: [8]\n"))
    matrix = expand(loaded)
    assert matrix is not None and matrix.variants[0].name == "dog-network.dim4-network.args.dim8"


def test_set_cannot_override_what_the_matrix_varies(project):
    path = spec(project, "network.dim: [32, 64]\n")
    assert issues(path, ("network.dim=8",)) == [
        "spec.yaml:19: matrix.network.dim: --set network.dim would override what the matrix varies"
    ]
    loaded = load_spec(path)
    runs, _ = load_variants(loaded, expand(loaded), ("training.epochs=3",))  # type: ignore[arg-type]
    assert {r.spec.training.epochs for r in runs} == {3}


def test_disk_latents_with_a_varied_resolution_are_refused(project):
    base = BASE.replace("training:\n", "training:\n  cache_latents: disk\n")
    path = spec(project, "dataset.resolution: [512, 768]\n", base)
    (issue,) = issues(path)
    assert issue.startswith("spec.yaml:20: matrix.dataset.resolution: runs that cache latents on disk")
    memory = spec(project, "dataset.resolution: [512, 768]\n")
    loaded = load_spec(memory)
    assert len(load_variants(loaded, expand(loaded))[0]) == 2  # type: ignore[arg-type]
    same = spec(project, "network.dim: [4, 8]\n", base)  # the same latents serve every run
    loaded = load_spec(same)
    assert len(load_variants(loaded, expand(loaded))[0]) == 2  # type: ignore[arg-type]


def test_warnings_of_a_run_point_at_the_matrix(project):
    loaded = load_spec(spec(project, "network.alpha: [8, 64]\n"))
    _, warnings = load_variants(loaded, expand(loaded))  # type: ignore[arg-type]
    assert any(str(w).startswith("spec.yaml:19: warning: matrix.network.alpha[1]: ") for w in warnings), warnings


def test_format_value():
    assert [format_value(v) for v in (1e-4, 5e-5, 2.5e-4, 1.0, 0.5, 32, True, [512, 768], "x", None)] == [
        "1e-4",
        "5e-5",
        "2.5e-4",
        "1",
        "0.5",
        "32",
        "true",
        "512x768",
        "x",
        "none",
    ]


# --- the commands ---------------------------------------------------------------------------------


def test_plan_shows_the_expansion_steps_and_time(project, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_RUNS", str(project / "runs"))
    path = spec(project, "network.dim: [32, 64]\nzip:\n  training.epochs: [1, 2]\n  training.seed: [1, 2]\n")
    code, out, err = cli("plan", str(path))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "matrix: 4 runs (network.dim x training.epochs x training.seed)"
    assert lines[2].split() == ["dog-dim32-epochs1-seed1", "32", "1", "1", "160", "1"]
    assert lines[3].split() == ["dog-dim32-epochs2-seed2", "32", "2", "2", "320", "2"]
    assert lines[-1] == (
        "total 960 steps; GPU time about 0:10:40 at 1.50 it/s (a rough rate for sd15; no run of dog recorded yet)"
    )
    code, out, _ = cli("plan", str(path), "--json")
    data = json.loads(out)["matrix"]
    assert [r["total_steps"] for r in data["runs"]] == [160, 320, 160, 320] and data["total_steps"] == 960
    assert data["estimate"] == {
        "seconds": 640,
        "rate_it_s": 1.5,
        "rate_source": "a rough rate for sd15; no run of dog recorded yet",
    }


def test_plan_uses_the_latest_recorded_rate(project, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_RUNS", str(project / "runs"))
    for name, stamp, rate in (
        ("dog-dim32", "20260101-000000-aaaaaa", 2.0),
        ("dog-dim64", "20260102-000000-bbbbbb", 4.0),
    ):
        folder = project / "runs" / name / stamp
        folder.mkdir(parents=True)
        (folder / "spec.lock.yaml").write_text("plan: {}\n")
        step = {"type": "Step", "epoch": 1, "step": 5, "total": 10, "loss": 0.1, "it_s": rate}
        (folder / "events.jsonl").write_text(json.dumps(step) + "\n" + json.dumps({"type": "ModelSaved"}) + "\n")
    path = spec(project, "network.dim: [32, 64]\n")
    code, out, _ = cli("plan", str(path))
    assert code == 0
    assert out.splitlines()[-1].startswith("total 640 steps; GPU time about 0:02:40 at 4.00 it/s (the latest recorded")
    assert "dog-dim64/20260102-000000-bbbbbb" in out


def test_plan_locates_a_dataset_problem_at_the_matrix(project):
    path = spec(project, "dataset.subsets[0].path: [img/10_sks, img/missing]\n")
    code, _, err = cli("plan", str(path))
    assert code == 2
    assert "spec.yaml:19: matrix.dataset.subsets[0].path[1]: " in err and "does not exist" in err


def test_check_shows_the_expansion(project):
    path = spec(project, "network.dim: [32, 64]\n")
    code, out, err = cli("check", str(path))
    assert code == 0, err
    assert "matrix: 2 runs (network.dim)" in out
    assert out.strip().splitlines()[-1].startswith(f"{path}: ok (") and out.strip().endswith("2 runs, 640 steps")
    code, out, _ = cli("check", str(path), "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)["matrix"]["runs"]] == ["dog-dim32", "dog-dim64"]


def test_check_ignores_cached_latents_beside_the_images(project):
    """sd-scripts' cache_latents_to_disk leaves <image>_<W>x<H>_sd.npz files beside the images."""
    folder = project / "img/10_sks"
    for image in sorted(folder.glob("*.png")):
        (folder / f"{image.stem}_0512x0512_sd.npz").write_bytes(b"PK\x03\x04 npz")
        (folder / f"{image.stem}.npz").write_bytes(b"PK\x03\x04 old npz")
    path = spec(project, "network.dim: [32, 64]\n")
    code, out, err = cli("check", str(path), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert "npz" not in json.dumps(data["datasets"])
    assert data["datasets"][0]["ok"] and data["datasets"][0]["subsets"][0]["images"] == 16
    assert all(not any(".npz" in f for f in files) for files in data["datasets"][0]["subsets"][0]["findings"].values())
    code, out, err = cli("check", str(path))
    assert code == 0 and "npz" not in out + err


def test_run_refuses_a_spec_with_a_matrix(project):
    code, _, err = cli("run", str(spec(project, "network.dim: [32, 64]\n")))
    assert code == 2 and "artlab-kohya sweep" in err
