"""Finding the sd-scripts install that runs a spec, the Python that runs it, and what that pair is.

The install comes from the spec's `kohya.dir`, else `$ARTLAB_KOHYA_DIR`, else the vendored submodule;
its Python from `kohya.python`, else `$ARTLAB_KOHYA_PYTHON`, else the install's own virtual environment
(`venv/` or `.venv/` in the sd-scripts folder or beside it: a kohya_ss root, or a venv made next to a
checkout), and only when none exists this interpreter, which says so (`Install.python_from`) and which
`needs.check_trainer` refuses before launch unless it can import torch and accelerate. Everything we learn
from the trainer's own environment (its argument surface, its package versions) is asked of that Python
through small standalone scripts in `inside/`: the trainer environment need not have artlab-kohya
installed, and artlab-kohya never imports torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import settings
from ..errors import ArtlabError
from ..files import write_json_atomic
from .pins import KNOWN_BROKEN, OPTIONAL, PIP_NAMES, SEEN_WORKING, TESTED_VERSIONS
from .surface import Surface, surface_from_dump

if TYPE_CHECKING:
    from ..spec.model import Spec

VENDORED = Path(__file__).resolve().parents[2] / "vendor" / "sd-scripts"
INSIDE_SCRIPTS = Path(__file__).resolve().parent / "inside"
TRAIN_SCRIPT = "train_network.py"
VENV_NAMES = ("venv", ".venv")  # kohya_ss's setup makes venv/ (its uv setup .venv/); sd-scripts' README venv/
OWN_PYTHON = "artlab-kohya's own Python"  # how python_from begins when no trainer environment was found


@dataclass(frozen=True)
class Install:
    """An sd-scripts folder and the Python that runs it; `python_from` says how that Python was chosen."""

    dir: Path
    python: str
    commit: str | None = None
    python_from: str = field(default="as given", compare=False)

    @property
    def own_python(self) -> bool:
        """True when no trainer environment was found and artlab-kohya's own interpreter stands in."""
        return self.python_from.startswith(OWN_PYTHON)


class InstallError(ArtlabError):
    """The sd-scripts install or its Python cannot be used; the message is one line for the user."""


# --------------------------------------------------------------------------- finding the install


def find_install(spec: Spec | None = None) -> Install:
    """The spec's kohya.dir, else $ARTLAB_KOHYA_DIR, else the vendored submodule; never raises.

    `render` shows the command even where no install exists yet; `check_install` says what is wrong.
    """
    kohya = spec.kohya if spec is not None else None
    return locate_install(kohya.dir if kohya else None, kohya.python if kohya else None)


def locate_install(
    folder: str | os.PathLike[str] | None = None, python: str | os.PathLike[str] | None = None
) -> Install:
    """An Install for an explicit folder and Python, with the same fallbacks as `find_install`.

    A kohya_ss checkout is accepted for its `sd-scripts` submodule folder, and a virtual
    environment's folder for its Python.
    """
    given = Path(folder).expanduser() if folder is not None else settings.kohya_dir() or VENDORED
    chosen = _sd_scripts_in(given.resolve())
    exe, how = trainer_python(chosen, python, as_named=_sd_scripts_in(given.absolute()))
    return Install(dir=chosen, python=exe, commit=git_commit(chosen), python_from=how)


def require_install(spec: Spec | None = None) -> Install:
    """`find_install`, checked: what `run` uses before it writes or launches anything."""
    install = find_install(spec)
    check_install(install)
    return install


def _sd_scripts_in(folder: Path) -> Path:
    """kohya_ss keeps sd-scripts as a submodule folder `sd-scripts/`; accept its root as well."""
    if not (folder / TRAIN_SCRIPT).is_file() and (folder / "sd-scripts").is_dir():
        return folder / "sd-scripts"
    return folder


def trainer_python(
    sd_scripts: Path, python: str | os.PathLike[str] | None = None, *, as_named: Path | None = None
) -> tuple[str, str]:
    """(the Python that runs `sd_scripts`, how it was chosen): the given one, else $ARTLAB_KOHYA_PYTHON,
    else a virtual environment of the install's own (`venv/` or `.venv/` in the sd-scripts folder, then
    beside it: a kohya_ss root holds both; looked for where the folder is and, if it was named through a
    symlink, `as_named`), else this interpreter, marked as such: artlab-kohya's own environment has no
    torch unless the trainer's packages were installed into it."""
    if python is not None:
        return _python_at(python), "as given"
    if (from_env := settings.kohya_python()) is not None:
        return _python_at(from_env), settings.KOHYA_PYTHON
    named = (as_named, as_named.parent) if as_named is not None else ()
    for folder in dict.fromkeys((sd_scripts, sd_scripts.parent, *named)):
        for name in VENV_NAMES:
            if (exe := _venv_python(folder / name)) is not None:
                return exe, f"the environment {folder / name}"
    return sys.executable, (
        f"{OWN_PYTHON}: no venv/ or .venv/ in {sd_scripts} or {sd_scripts.parent}, and neither kohya.python "
        f"nor {settings.KOHYA_PYTHON} set"
    )


def _venv_python(folder: Path) -> str | None:
    """A virtual environment's interpreter (absolute, not resolved: a venv's python is a symlink out of it)."""
    for candidate in (folder / "bin" / "python", folder / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate.absolute())
    return None


def _python_at(python: str | os.PathLike[str]) -> str:
    """A Python named by the user: a venv folder means its interpreter, a bare name is looked up on PATH."""
    path = Path(python).expanduser()
    if path.is_dir() and (exe := _venv_python(path)) is not None:  # a virtual environment: its interpreter
        return exe
    if os.sep not in str(python) and not path.exists():
        return str(python)  # a command name such as python3.11, looked up on PATH
    # absolute() but not resolve(): a venv's python is a symlink, and resolving it leaves the venv
    return str(path.absolute())


def check_install(install: Install) -> None:
    """Raise InstallError, with one line saying what to do, unless the folder and Python can run."""
    folder = install.dir
    vendored = folder == VENDORED
    if not folder.is_dir():
        if vendored:
            raise InstallError(
                "no sd-scripts install: vendor/sd-scripts is missing; run `git submodule update --init "
                "vendor/sd-scripts` in the artlab-kohya checkout, or set kohya.dir (or ARTLAB_KOHYA_DIR) "
                "to an sd-scripts checkout"
            )
        raise InstallError(f"sd-scripts folder {folder} does not exist (kohya.dir or ARTLAB_KOHYA_DIR)")
    if not (folder / TRAIN_SCRIPT).is_file():
        if vendored:
            raise InstallError(
                "vendor/sd-scripts has no train_network.py (the git submodule is not checked out): run "
                "`git submodule update --init vendor/sd-scripts` in the artlab-kohya checkout"
            )
        if folder.name == "sd-scripts" and (folder.parent / "kohya_gui.py").exists():
            raise InstallError(
                f"{folder} is kohya_ss's sd-scripts submodule, not checked out: run "
                f"`git submodule update --init --recursive` in {folder.parent}"
            )
        raise InstallError(
            f"no {TRAIN_SCRIPT} in {folder}: kohya.dir (or ARTLAB_KOHYA_DIR) must be an sd-scripts checkout, "
            "or a kohya_ss folder (its sd-scripts subfolder is used)"
        )
    python = Path(install.python)
    if os.sep in install.python:
        if not python.exists():
            raise InstallError(f"the trainer Python {install.python} does not exist (kohya.python)")
        if python.is_dir() or not os.access(python, os.X_OK):
            raise InstallError(f"the trainer Python {install.python} is not an executable file (kohya.python)")
    elif shutil.which(install.python) is None:
        raise InstallError(f"the trainer Python {install.python!r} is not on PATH (kohya.python)")


# --------------------------------------------------------------------------- commit

_HEX = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def git_commit(folder: Path) -> str | None:
    """The commit checked out in `folder`, or None when it is not a git checkout (an exported copy).

    Read from the files: .git/HEAD, then the loose ref or packed-refs; a submodule's `.git` file
    (`gitdir: ...`) and a worktree's `commondir` are followed. Only `folder` itself is looked at: an
    exported copy inside some other repository must not report that repository's commit. Falls back to
    `git rev-parse HEAD` (for layouts we do not read, such as reftables) when git is installed.
    """
    dot_git = folder / ".git"
    if not dot_git.exists():
        return None
    try:
        found = _commit_from_files(dot_git)
    except (OSError, UnicodeDecodeError, ValueError):
        found = None
    return found or _commit_from_git(folder)


def _git_dir(dot_git: Path) -> Path:
    if dot_git.is_dir():
        return dot_git
    text = dot_git.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        raise ValueError(f"{dot_git}: not a gitdir file")
    target = Path(text[len("gitdir:") :].strip())
    return target if target.is_absolute() else (dot_git.parent / target)


def _commit_from_files(dot_git: Path) -> str | None:
    git_dir = _git_dir(dot_git)
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    if _HEX.fullmatch(head):
        return head  # detached HEAD: how a submodule is checked out
    if not head.startswith("ref:"):
        return None
    ref = head[len("ref:") :].strip()
    common = git_dir
    if (git_dir / "commondir").is_file():  # a linked worktree keeps its refs in the main .git
        common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
    for base in dict.fromkeys((git_dir, common)):
        loose = base / ref
        if loose.is_file():
            value = loose.read_text(encoding="utf-8").strip()
            return value if _HEX.fullmatch(value) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref and _HEX.fullmatch(parts[0]):
                return parts[0]
    return None


def _commit_from_git(folder: Path) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(
            [git, "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and _HEX.fullmatch(value) else None


def describe_commit(commit: str | None) -> str:
    """How a commit reads in messages: its short hash, or why there is none."""
    return commit[:8] if commit else "unknown (not a git checkout)"


# --------------------------------------------------------------------------- running our engine scripts


def run_engine_script(install: Install, name: str, args: list[str], *, timeout: float, what: str) -> dict[str, Any]:
    """Run inside/NAME with the trainer's Python in the install folder; its JSON result, or InstallError.

    The result goes through a file, not stdout: sd-scripts and its libraries print to stdout on import.
    """
    with tempfile.TemporaryDirectory(prefix="artlab-kohya-") as tmp:
        out = Path(tmp) / "result.json"
        argv = [install.python, str(INSIDE_SCRIPTS / name), *args, str(out)]
        env = dict(os.environ, PYTHONIOENCODING="utf-8", HF_HUB_OFFLINE="1")
        try:
            proc = subprocess.run(
                argv,
                cwd=install.dir if install.dir.is_dir() else None,
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise InstallError(f"{what} with {install.python} took longer than {timeout:.0f} s") from None
        except OSError as exc:
            raise InstallError(f"cannot run the trainer Python {install.python}: {exc.strerror or exc}") from None
        try:
            data = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
    if not isinstance(data, dict):
        tail = _last_line(proc.stderr) or _last_line(proc.stdout) or "no output"
        if proc.returncode == -signal.SIGKILL:
            raise InstallError(f"{what} with {install.python} was killed (out of memory?): {tail}")
        status = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        raise InstallError(f"{what} with {install.python} failed ({status}): {tail}")
    return data


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# --------------------------------------------------------------------------- argument surface


# Modules sd-scripts imports whose pip package has another name.
def pip_name(module: str) -> str:
    top = module.split(".")[0]
    return PIP_NAMES.get(top, top.replace("_", "-"))


def install_fingerprint(install: Install, script: str) -> str:
    """SHA-256 over the files the training parser is built from: the script, train_network.py, library/.

    Keys the surface cache together with the commit, so a locally edited checkout, or an exported
    copy without a commit, is asked again when those files change.
    """
    digest = hashlib.sha256()
    library = install.dir / "library"
    names = [script, TRAIN_SCRIPT] + sorted(
        p.relative_to(install.dir).as_posix() for p in library.glob("*.py") if p.is_file()
    )
    for name in dict.fromkeys(names):
        path = install.dir / name
        digest.update(name.encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def surface_cache_file(install: Install, script: str, commit: str | None) -> Path:
    stem = script.removesuffix(".py")
    key = f"{commit[:12] if commit else 'nogit'}-{install_fingerprint(install, script)[:16]}"
    return settings.cache_root() / "surfaces" / f"{stem}-{key}.json"


def read_surface(install: Install, script: str = TRAIN_SCRIPT, *, timeout: float = 300) -> Surface:
    """The install's own argument surface for `script`, asked of its parser in its Python; cached.

    sd-scripts silently keeps unknown --config_file keys, so every key we render is checked against
    this before launch. Importing the script costs seconds (torch, diffusers), hence the cache, keyed by
    commit and by the parser's source files.
    """
    check_install(install)
    if not (install.dir / script).is_file():
        raise InstallError(f"no {script} in {install.dir}")
    commit = install.commit or git_commit(install.dir)
    cache_file = surface_cache_file(install, script, commit)
    cached = _read_cached_surface(cache_file, script)
    if cached is None:
        data = run_engine_script(
            install,
            "dump_surface.py",
            [str(install.dir), script],
            timeout=timeout,
            what=f"reading the arguments of {script}",
        )
        if "error" in data:
            raise InstallError(_dump_error(install, script, data))
        cached = data["options"]
        with contextlib.suppress(OSError):  # a read-only cache only costs time
            write_json_atomic(cache_file, {"commit": commit, "script": script, "options": cached})
    return surface_from_dump(commit or "unknown", script, cached)


def _read_cached_surface(path: Path, script: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("script") == script and isinstance(data.get("options"), dict):
        return data["options"]
    return None


def describe_python(install: Install) -> str:
    """The trainer's Python as messages name it: the interpreter, and how it was chosen."""
    return f"the trainer Python {install.python} ({install.python_from})"


def python_advice(install: Install, package: str) -> str:
    """What to do when the trainer's Python lacks `package` (a pip requirement)."""
    pip = shlex.join([install.python, "-m", "pip", "install", package])
    if install.own_python:
        return (
            "set kohya.python (or ARTLAB_KOHYA_PYTHON) to the Python or venv folder that runs sd-scripts "
            "(kohya_ss: its venv/), make a venv/ beside sd-scripts (README: Install), or install sd-scripts' "
            f"requirements into this one (`{pip}`, ...)"
        )
    return (
        f"install sd-scripts' requirements there (`{pip}`, ...), or point kohya.python at the environment that has them"
    )


def _dump_error(install: Install, script: str, data: dict[str, Any]) -> str:
    who = describe_python(install)
    if data.get("error") == "import" and data.get("module"):
        module = str(data["module"])
        if module.split(".")[0] in ("library", "networks", Path(script).stem, "train_network"):
            return (
                f"{who} cannot import sd-scripts' own {module} from {install.dir}: "
                "is it a complete sd-scripts checkout?"
            )
        return f"{who} cannot import {script}: no module named {module!r}; {python_advice(install, pip_name(module))}"
    message = _last_line(str(data.get("message", ""))) or str(data.get("error"))
    return f"{who} cannot load {script} from {install.dir}: {data.get('error')}: {message}"


# --------------------------------------------------------------------------- versions


def trainer_versions(install: Install, *, timeout: float = 180) -> dict[str, Any]:
    """Python, torch/CUDA/GPUs, package versions and optional modules of the trainer environment.

    Asked of its Python with the sd-scripts folder first on its path, as the trainer runs. Keys: python,
    executable, platform, packages {pip name: version or None}, torch {version, cuda, cuda_available,
    gpus [{name, memory_bytes, capability}], bf16, mps} or torch {error}, modules {import name: None when
    it imports, else the error} (see inside/probe_versions.py for the modules asked about).
    """
    return run_engine_script(
        install, "probe_versions.py", [str(install.dir)], timeout=timeout, what="probing the trainer Python"
    )


def environment_key(python: str) -> str | None:
    """A key that changes when packages are installed into or removed from `python`'s environment.

    pip adds and removes `*.dist-info` folders on every change, which moves the mtime of
    site-packages. None where no site-packages sits beside the interpreter (then nothing is cached).
    """
    exe = Path(shutil.which(python) or python)
    prefix = exe.parent.parent
    folders = sorted([*prefix.glob("lib/python3*/site-packages"), *prefix.glob("Lib/site-packages")])
    if not folders:
        return None
    digest = hashlib.sha256(str(exe.resolve()).encode())
    for folder in folders:
        digest.update(f"{folder}:{folder.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _versions_cache(install: Install) -> Path | None:
    """The cache file of `install`'s probe: per environment, install folder and probe script (a changed
    probe asks again rather than read an answer that lacks what it now reports)."""
    try:
        key = environment_key(install.python)
        probe = (INSIDE_SCRIPTS / "probe_versions.py").read_bytes()
    except OSError:
        return None
    if key is None:
        return None
    digest = hashlib.sha256(f"{key}\0{install.dir}\0".encode() + probe).hexdigest()[:24]
    return settings.cache_root() / "versions" / f"{digest}.json"


def cached_versions(install: Install) -> dict[str, Any] | None:
    """The last probe of this environment, if one is cached; never runs the trainer's Python (init and
    render use it to stay instant)."""
    cache = _versions_cache(install)
    if cache is None or not cache.is_file():
        return None
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_versions(install: Install) -> dict[str, Any]:
    """trainer_versions, cached per environment: probing imports torch, which takes seconds per run."""
    cached = cached_versions(install)
    if cached is not None:
        return cached
    versions = trainer_versions(install)
    cache = _versions_cache(install)
    if cache is not None and "error" not in versions:
        with contextlib.suppress(OSError):  # a read-only cache only costs time
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(cache, versions)
    return versions


# What we test against: shared/kohya (the pins in setup-engine.sh, measured on the pinned commit).
@dataclass(frozen=True)
class VersionCheck:
    package: str
    found: str | None
    tested: str
    status: Literal["ok", "warn", "fail"]
    note: str


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numbers of a version: "2.14.1+cu130" -> (2, 14, 1), "1.0rc1" -> (1, 0)."""
    numbers = []
    for part in version.split("+")[0].split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(numbers)


def _matches(found: str, tested: str) -> bool:
    if tested.endswith(".*"):
        prefix = version_tuple(tested[:-2])
        return version_tuple(found)[: len(prefix)] == prefix
    return version_tuple(found) == version_tuple(tested)


def compare_versions(packages: dict[str, str | None]) -> list[VersionCheck]:
    """Each tested package against what we test with: ok, warn (untested) or fail (known broken/missing)."""
    checks = []
    for package, tested in TESTED_VERSIONS.items():
        found = packages.get(package)
        if found is None:
            if package in OPTIONAL:
                checks.append(
                    VersionCheck(
                        package, None, tested, "warn", f"not installed; locon/loha/lokr need {package}=={tested}"
                    )
                )
            else:
                checks.append(VersionCheck(package, None, tested, "fail", f"not installed; sd-scripts needs {package}"))
            continue
        broken = next((b for b in KNOWN_BROKEN if b.package == package and b.applies(version_tuple(found))), None)
        if broken is not None:
            checks.append(VersionCheck(package, found, tested, "fail", broken.why))
        elif _matches(found, tested):
            note = "the version we test against" if "*" not in tested else f"{tested.replace('*', 'x')}, as we test"
            checks.append(VersionCheck(package, found, tested, "ok", note))
        elif any(_matches(found, seen) for seen in SEEN_WORKING.get(package, ())):
            checks.append(VersionCheck(package, found, tested, "ok", f"seen working; we test against {tested}"))
        else:
            checks.append(VersionCheck(package, found, tested, "warn", f"untested; we test against {tested}"))
    return checks
