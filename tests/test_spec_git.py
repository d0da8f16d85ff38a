"""The lock records the spec's git commit and whether the spec file differed from it at launch."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from fake_project import fake_project

from artlab_kohya.run.train import RunOptions, run_spec, spec_git
from artlab_kohya.spec import load_spec


def git(folder: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin", "HOME": str(folder)}  # fmt: skip
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip()


def test_outside_a_repository_it_is_none(tmp_path):
    (tmp_path / "spec.yaml").write_text("x: 1\n")
    assert spec_git(tmp_path / "spec.yaml") is None


def test_commit_and_dirty(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("x: 1\n")
    git(tmp_path, "init", "-q")
    assert spec_git(spec) is None  # a repository without a commit has no HEAD
    git(tmp_path, "add", "spec.yaml")
    git(tmp_path, "commit", "-q", "-m", "spec")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert spec_git(spec) == {"commit": head, "dirty": False}
    (tmp_path / "other.txt").write_text("elsewhere")  # other files do not make the spec dirty
    assert spec_git(spec) == {"commit": head, "dirty": False}
    spec.write_text("x: 2\n")
    assert spec_git(spec) == {"commit": head, "dirty": True}
    untracked = tmp_path / "new.yaml"
    untracked.write_text("x: 3\n")
    assert spec_git(untracked) == {"commit": head, "dirty": True}  # not committed at all


def test_the_lock_holds_it(tmp_path, monkeypatch):
    project = fake_project(tmp_path, monkeypatch)
    git(project, "init", "-q")
    git(project, "add", "spec.yaml")
    git(project, "commit", "-q", "-m", "spec")
    outcome = run_spec(load_spec(project / "spec.yaml"), RunOptions(runs_root=project / "runs", plain=True))
    assert outcome.status == "succeeded"
    lock = yaml.safe_load((outcome.folder / "spec.lock.yaml").read_text())
    assert lock["spec_git"] == {"commit": git(project, "rev-parse", "HEAD"), "dirty": False}
