"""Finding the install, its commit, its argument surface and its versions (kohya.py).

CI runs these against fake installs (tests/kohya_fakes.py): the real dump and probe scripts run in a
child Python, only sd-scripts and torch are stand-ins. The `engine` tests ask the real sd-scripts.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kohya_fakes import PINNED, bundled_options, fake_git, fake_sd_scripts, fake_trainer

from artlab_kohya.spec import load_spec
from artlab_kohya.trainer import install as kohya
from artlab_kohya.trainer import pins
from artlab_kohya.trainer.install import (
    Install,
    InstallError,
    check_install,
    compare_versions,
    find_install,
    git_commit,
    locate_install,
    pip_name,
    read_surface,
    require_install,
    surface_cache_file,
    trainer_versions,
    version_tuple,
)
from artlab_kohya.trainer.surface import bundled_surface

OTHER = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- commit


def test_commit_of_a_detached_head(tmp_path):
    fake_git(tmp_path / ".git", PINNED)
    assert git_commit(tmp_path) == PINNED


def test_commit_through_a_loose_ref_and_through_packed_refs(tmp_path):
    loose, packed = tmp_path / "loose", tmp_path / "packed"
    fake_git(loose / ".git", PINNED, ref="refs/heads/main")
    fake_git(packed / ".git", OTHER, ref="refs/heads/main", packed=True)
    assert git_commit(loose) == PINNED
    assert git_commit(packed) == OTHER  # not the peeled ^ line, not the other branch


def test_commit_of_a_submodule_follows_its_gitdir_file(tmp_path):
    # how `git submodule update --init` lays out vendor/sd-scripts and kohya_ss/sd-scripts
    superproject = tmp_path / "kohya_ss"
    fake_git(superproject / ".git" / "modules" / "sd-scripts", PINNED)
    sub = superproject / "sd-scripts"
    sub.mkdir()
    (sub / ".git").write_text("gitdir: ../.git/modules/sd-scripts\n")
    assert git_commit(sub) == PINNED


def test_commit_of_a_linked_worktree_reads_refs_from_the_common_dir(tmp_path):
    main = tmp_path / "main" / ".git"
    fake_git(main, PINNED, ref="refs/heads/main")
    worktree_git = main / "worktrees" / "wt"
    worktree_git.mkdir(parents=True)
    (worktree_git / "HEAD").write_text("ref: refs/heads/main\n")
    (worktree_git / "commondir").write_text("../..\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {worktree_git}\n")
    assert git_commit(wt) == PINNED


def test_an_exported_copy_has_no_commit_even_inside_another_repository(tmp_path):
    fake_git(tmp_path / ".git", OTHER)
    copy = tmp_path / "vendor" / "sd-scripts"
    copy.mkdir(parents=True)
    assert git_commit(copy) is None


def test_unreadable_git_files_fall_back_to_git_or_give_none(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/gone\n")
    monkeypatch.setattr(kohya.shutil, "which", lambda name: None)  # no git binary on this machine
    assert git_commit(tmp_path) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_commit_read_from_files_agrees_with_git(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    env = dict(
        os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"
    )

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q", "-b", "main")
    (repo / "a").write_text("a")
    git("add", "a")
    git("commit", "-q", "-m", "one")
    expected = git("rev-parse", "HEAD").strip()
    assert kohya._commit_from_files(repo / ".git") == expected
    git("pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert kohya._commit_from_files(repo / ".git") == expected
    git("checkout", "-q", "--detach")
    assert git_commit(repo) == expected


# --------------------------------------------------------------------------- finding


def test_the_spec_then_the_environment_then_the_vendored_submodule(tmp_path, monkeypatch, write_spec):
    from_env = fake_sd_scripts(tmp_path / "env-sd")
    from_spec = fake_sd_scripts(tmp_path / "spec-sd", commit=OTHER)
    monkeypatch.setenv("ARTLAB_KOHYA_DIR", str(from_env))
    spec_text = "model: {source: m.safetensors}\ndataset: {subsets: [{path: img/1_a}]}\nnetwork: {type: lora}\n"
    plain = load_spec(write_spec(spec_text)).spec
    assert find_install(plain) == Install(from_env, sys.executable, PINNED)
    pointed = load_spec(write_spec(spec_text + f"kohya: {{dir: {from_spec}}}\n", "pointed.yaml")).spec
    assert find_install(pointed).dir == from_spec and find_install(pointed).commit == OTHER
    monkeypatch.delenv("ARTLAB_KOHYA_DIR")
    assert find_install(plain).dir == kohya.VENDORED
    assert find_install(None).python == sys.executable


def test_a_kohya_ss_folder_means_its_sd_scripts_submodule(tmp_path):
    root = tmp_path / "kohya_ss"
    fake_sd_scripts(root / "sd-scripts")
    (root / "kohya_gui.py").write_text("")
    assert locate_install(root).dir == root / "sd-scripts"


def test_a_venv_folder_means_its_python(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    assert locate_install(tmp_path, venv).python == str(venv / "bin" / "python")
    assert locate_install(tmp_path, "python3").python == "python3"  # a command name stays one


def test_install_stays_constructible_positionally():
    install = Install(Path("/opt/sd-scripts"), "/opt/venv/bin/python")
    assert install.commit is None


# --------------------------------------------------------------------------- what is wrong


def test_missing_folder(tmp_path):
    with pytest.raises(InstallError, match=r"sd-scripts folder .*nowhere does not exist"):
        check_install(Install(tmp_path / "nowhere", sys.executable))


def test_vendored_submodule_missing_or_not_checked_out(tmp_path, monkeypatch):
    vendored = tmp_path / "vendor" / "sd-scripts"
    monkeypatch.setattr(kohya, "VENDORED", vendored)
    with pytest.raises(InstallError, match="git submodule update --init vendor/sd-scripts") as missing:
        check_install(Install(vendored, sys.executable))
    assert "missing" in str(missing.value)
    vendored.mkdir(parents=True)  # git leaves an empty folder for a submodule it has not checked out
    with pytest.raises(
        InstallError, match="no train_network.py .*not checked out.*git submodule update --init vendor/sd-scripts"
    ):
        check_install(Install(vendored, sys.executable))


def test_kohya_ss_with_its_submodule_not_checked_out(tmp_path):
    root = tmp_path / "kohya_ss"
    (root / "sd-scripts").mkdir(parents=True)
    (root / "kohya_gui.py").write_text("")
    install = locate_install(root)
    with pytest.raises(InstallError, match="git submodule update --init --recursive` in .*kohya_ss"):
        check_install(install)


def test_a_folder_that_is_not_sd_scripts(tmp_path):
    with pytest.raises(InstallError, match="no train_network.py in .*must be an sd-scripts checkout, or a kohya_ss"):
        check_install(Install(tmp_path, sys.executable))


def test_trainer_python_missing_or_not_executable(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd")
    with pytest.raises(InstallError, match="trainer Python .*/venv/bin/python does not exist"):
        check_install(Install(sd, str(tmp_path / "venv/bin/python")))
    not_exec = tmp_path / "python"
    not_exec.write_text("")
    with pytest.raises(InstallError, match="is not an executable file"):
        check_install(Install(sd, str(not_exec)))
    with pytest.raises(InstallError, match="not on PATH"):
        check_install(Install(sd, "no-such-python-artlab"))


def test_require_install_checks(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_DIR", str(tmp_path / "gone"))
    with pytest.raises(InstallError, match="does not exist"):
        require_install(None)


# --------------------------------------------------------------------------- argument surface


def test_dump_of_a_parser_built_from_the_bundled_surface_gives_it_back(tmp_path):
    """Bundled JSON -> argparse -> our dump script -> the same JSON: the dump format is the bundled one."""
    install = locate_install(fake_sd_scripts(tmp_path / "sd"))
    for script in ("train_network.py", "sdxl_train_network.py"):
        surface = read_surface(install, script)
        assert surface.options == bundled_surface(script).options
        assert surface.commit == PINNED and surface.script == script


def test_an_unknown_key_names_the_install_commit(tmp_path):
    options = {k: v for k, v in bundled_options("train_network.py").items() if k != "network_dim"}
    install = locate_install(fake_sd_scripts(tmp_path / "sd", commit=OTHER, options=options))
    surface = read_surface(install)
    assert surface.problem("network_dim", 8).startswith(
        "train_network.py at commit 01234567 has no argument --network_dim"
    )
    assert "did you mean 'network_alpha'" in surface.problem("netwrk_alpha", 8)


def test_the_surface_is_cached_per_commit_and_sources(tmp_path):
    counter = tmp_path / "imports"
    prelude = f"open({str(counter)!r}, 'a').write('x')"
    small = {"network_dim": {"type": "int", "nargs": None, "choices": None, "default": None}}
    sd = fake_sd_scripts(tmp_path / "sd", options=small, prelude=prelude)
    install = locate_install(sd)
    assert set(read_surface(install).options) == {"network_dim"}
    assert set(read_surface(install).options) == {"network_dim"}
    assert counter.read_text() == "x"  # imported once: the second answer came from the cache
    cache_file = surface_cache_file(install, "train_network.py", PINNED)
    assert cache_file.is_file() and cache_file.name.startswith("train_network-48d368fa5577-")
    # an edited checkout at the same commit is asked again
    (sd / "train_network.py").write_text((sd / "train_network.py").read_text().replace('"network_dim"', '"dim2"'))
    assert set(read_surface(install).options) == {"dim2"}
    assert counter.read_text() == "xx"


def test_a_copy_without_git_is_keyed_by_its_sources(tmp_path):
    install = locate_install(fake_sd_scripts(tmp_path / "sd", commit=None))
    assert install.commit is None
    surface = read_surface(install)
    assert surface.commit == "unknown"
    assert "at commit unknown" in surface.problem("nope", 1)
    assert surface_cache_file(install, "train_network.py", None).name.startswith("train_network-nogit-")


def test_option_kinds_are_dumped_like_the_bundled_surface(tmp_path):
    prelude = "import argparse"
    sd = fake_sd_scripts(tmp_path / "sd", options={})
    text = (sd / "train_network.py").read_text()
    text = text.replace(
        "    return parser\n",
        "    parser.add_argument('--off', action='store_false')\n"
        "    parser.add_argument('--plain')\n"
        "    parser.add_argument('--steps', type=int_or_float, default=0)\n"
        "    parser.add_argument('--cfg', type=Path, default=None)\n"
        "    parser.add_argument('--args', type=str, nargs='*', default=None)\n"
        "    parser.add_argument('--zero', type=int, choices=[0, 1, 2], default=2)\n"
        "    parser.add_argument('target', nargs='?')\n"
        "    return parser\n",
    )
    (sd / "train_network.py").write_text(prelude + "\n" + text)
    options = read_surface(locate_install(sd)).options
    assert set(options) == {"off", "plain", "steps", "cfg", "args", "zero"}  # no help, no positionals
    assert options["off"].type == "flag" and options["off"].default is True
    assert options["plain"].type == "str"
    assert options["steps"].type == "int_or_float"
    assert options["cfg"].type == "Path"
    assert options["args"].nargs == "*"
    assert options["zero"].choices == (0, 1, 2)


def test_a_missing_module_names_the_pip_package(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd", prelude="import artlab_no_such_module.sub")
    with pytest.raises(InstallError) as err:
        read_surface(locate_install(sd))
    message = str(err.value)
    assert "no module named 'artlab_no_such_module'" in message
    assert "-m pip install artlab-no-such-module" in message and "\n" not in message


def test_a_missing_sd_scripts_module_says_the_checkout_is_incomplete(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd", prelude="import library.strategy_sd")
    with pytest.raises(InstallError, match="sd-scripts' own library.strategy_sd .*complete sd-scripts checkout"):
        read_surface(locate_install(sd))


def test_a_script_that_breaks_on_import_or_has_no_parser(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd", prelude="raise RuntimeError('operator torchvision::nms does not exist')")
    with pytest.raises(InstallError, match="cannot load train_network.py .*RuntimeError: operator torchvision::nms"):
        read_surface(locate_install(sd))
    (sd / "train_network.py").write_text("x = 1\n")
    with pytest.raises(InstallError, match="has no setup_parser"):
        read_surface(locate_install(sd))


def test_pip_names():
    assert pip_name("cv2") == "opencv-python"
    assert pip_name("lycoris.kohya") == "lycoris-lora"
    assert pip_name("PIL.Image") == "Pillow"
    assert pip_name("voluptuous") == "voluptuous"
    assert pip_name("huggingface_hub") == "huggingface-hub"


# --------------------------------------------------------------------------- versions


def test_trainer_versions_from_its_own_python(tmp_path):
    python = fake_trainer(tmp_path / "env", {"torch": "2.14.1", "accelerate": "1.6.0"})
    versions = trainer_versions(Install(fake_sd_scripts(tmp_path / "sd"), python))
    assert versions["python"] == platform.python_version()
    assert versions["packages"]["accelerate"] == "1.6.0" and versions["packages"]["diffusers"] is None
    torch = versions["torch"]
    assert torch["version"] == "2.14.1+cu130" and torch["cuda"] == "13.0" and torch["cuda_available"]
    assert torch["gpus"] == [{"name": "NVIDIA H100 80GB HBM3", "memory_bytes": 85_520_809_984, "capability": "9.0"}]
    assert torch["bf16"] is True


def test_trainer_versions_without_torch(tmp_path):
    python = fake_trainer(tmp_path / "env", {"accelerate": "1.6.0"})
    versions = trainer_versions(Install(fake_sd_scripts(tmp_path / "sd"), python))
    assert "No module named 'torch'" in versions["torch"]["error"]


def test_version_tuple():
    assert version_tuple("2.14.1+cu130") == (2, 14, 1)
    assert version_tuple("1.0rc1") == (1, 0)
    assert version_tuple("0.4.5") == (0, 4, 5)
    assert version_tuple("dev") == ()


def by_package(packages: dict[str, str | None]) -> dict[str, tuple[str, str]]:
    return {v.package: (v.status, v.note) for v in compare_versions(packages)}


def test_what_we_test_against_is_ok():
    found = by_package(dict(pins.TESTED_VERSIONS, torch="2.14.1+cu130"))
    assert {status for status, _ in found.values()} == {"ok"}


def test_lycoris_4_fails_loudly():
    status, note = by_package({"lycoris-lora": "4.1.3"})["lycoris-lora"]
    assert status == "fail" and "FAILS on SD1.x" in note and "lycoris-lora==3.4.0" in note


def test_known_broken_untested_seen_working_and_missing():
    found = by_package(
        {"torch": "3.0.0", "accelerate": "1.15.0", "transformers": "5.24.0", "diffusers": "0.33.0", "safetensors": None}
    )
    assert found["torch"][0] == "warn"
    assert found["accelerate"] == ("ok", "seen working; we test against 1.6.0")
    assert found["transformers"][0] == "fail" and "CLIPFeatureExtractor" in found["transformers"][1]
    assert found["diffusers"] == ("warn", "untested; we test against 0.32.1")
    assert found["safetensors"][0] == "fail" and "not installed" in found["safetensors"][1]
    assert found["lycoris-lora"][0] == "warn"  # only the LyCORIS types need it


# --------------------------------------------------------------------------- the real engine


@pytest.mark.engine
def test_real_surface_equals_the_bundled_one(engine):
    """Our dump of the pinned commit is the bundled surface: the dump is right, and so is the file."""
    install = locate_install(engine["ARTLAB_KOHYA_DIR"], engine["ENGINE_PYTHON"])
    assert install.commit == PINNED
    for script in ("train_network.py", "sdxl_train_network.py"):
        surface = read_surface(install, script)
        assert surface.commit == PINNED
        assert surface.options == bundled_surface(script).options
        cached = json.loads(surface_cache_file(install, script, PINNED).read_text())
        bundled = json.loads(Path(kohya.__file__).with_name("data").joinpath("surface-48d368fa.json").read_text())
        assert cached["options"] == bundled["scripts"][script]


@pytest.mark.engine
def test_real_trainer_versions_are_what_we_test_against(engine):
    install = locate_install(engine["ARTLAB_KOHYA_DIR"], engine["ENGINE_PYTHON"])
    versions = trainer_versions(install)
    assert "error" not in versions["torch"]
    assert versions["torch"]["version"].startswith("2.")
    assert {v.package: v.status for v in compare_versions(versions["packages"])} == dict.fromkeys(
        pins.TESTED_VERSIONS, "ok"
    )
