"""sd-scripts' own LoRA tools, run in the trainer's Python: networks/resize_lora.py (lower a LoRA's rank by
SVD), networks/merge_lora.py and networks/sdxl_merge_lora.py (LoRAs into a checkpoint, or several LoRAs
into one LoRA).

What the scripts would do silently wrong is refused before they start, from the files' headers: a LoHa or
LoKr (they only know lora_down/lora_up keys, and would copy or skip the rest), a LoRA of another family
than the checkpoint, ranks that differ between LoRAs merged without --concat, an output that exists
(never overwritten: the script writes a hidden temporary file beside it, which is linked into place only
if nothing took the name meanwhile). Beside the output goes OUT.artlab.json: the inputs with their
sha256, the command, the sd-scripts commit, the output's sha256.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ArtlabError, InputError
from ..files import write_json_atomic
from ..models.checkpoint import ModelError, check_model_file, detect_family
from ..models.hashing import sha256_file
from ..models.lora_file import LoraInfo
from .install import Install, describe_commit
from .output import Event, ModuleNotFound, last_traceback, wrong_python
from .process import CHILD_ENV

RESIZE_SCRIPT = "networks/resize_lora.py"
MERGE_SCRIPTS = {
    "sd15": "networks/merge_lora.py",
    "sd2": "networks/merge_lora.py",
    "sdxl": "networks/sdxl_merge_lora.py",
}
Precision = Literal["float", "fp16", "bf16"]
DynamicMethod = Literal["sv_ratio", "sv_fro", "sv_cumulative"]
# The networks resize_lora.py and merge_lora.py understand: those saved as lora_down/lora_up pairs.
DOWN_UP = ("lora", "locon", "dylora")
RECORD_SUFFIX = ".artlab.json"


class LoraToolError(ArtlabError):
    """The tool ran and failed, or could not start; one line for the user."""


@dataclass(frozen=True)
class Job:
    """One run of a tool: the command (with the temporary output path), what goes in, where it ends."""

    tool: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    output: Path
    partial: Path  # what the script writes; renamed to output when it succeeds
    inputs: list[tuple[str, Path]]  # (role, path): lora, model
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- building the commands (pure)


def resize_job(
    install: Install,
    lora: Path,
    output: Path,
    *,
    dim: int,
    conv_dim: int | None = None,
    dynamic: DynamicMethod | None = None,
    dynamic_param: float | None = None,
    save_precision: Precision = "fp16",
    device: str | None = None,
    verbose: bool = False,
) -> Job:
    partial = _partial(output)
    argv = [install.python, str(install.dir / RESIZE_SCRIPT), "--model", str(lora), "--save_to", str(partial)]
    argv += ["--new_rank", str(dim), "--save_precision", save_precision]
    if conv_dim is not None:
        argv += ["--new_conv_rank", str(conv_dim)]
    if dynamic is not None:
        argv += ["--dynamic_method", dynamic, "--dynamic_param", _number(dynamic_param)]
    if device:
        argv += ["--device", device]
    if verbose:
        argv.append("--verbose")
    return Job("resize_lora", argv, _env(install), install.dir, output, partial, [("lora", lora)])


def merge_job(
    install: Install,
    loras: Sequence[Path],
    output: Path,
    *,
    family: str,
    ratios: Sequence[float],
    model: Path | None = None,
    concat: bool = False,
    precision: Precision = "float",
    save_precision: Precision = "fp16",
) -> Job:
    """LoRAs into `model` (a checkpoint of `family`), or into one LoRA when model is None."""
    script = MERGE_SCRIPTS[family]
    partial = _partial(output)
    argv = [install.python, str(install.dir / script)]
    if model is not None:
        argv += ["--sd_model", str(model)]
        if family == "sd2":
            argv.append("--v2")
    argv += ["--save_to", str(partial), "--models", *(str(p) for p in loras)]
    argv += ["--ratios", *(_number(r) for r in ratios)]
    argv += ["--precision", precision, "--save_precision", save_precision]
    if concat:
        argv.append("--concat")
    inputs = [("lora", p) for p in loras] + ([("model", model)] if model is not None else [])
    tool = Path(script).stem
    return Job(tool, argv, _env(install), install.dir, output, partial, inputs)


def _env(install: Install) -> dict[str, str]:
    """The scripts import `library` from the sd-scripts folder, and `lora` beside them (run as files)."""
    env = dict(CHILD_ENV, HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(install.dir), os.environ.get("PYTHONPATH", "")) if p)
    return env


def _partial(output: Path) -> Path:
    # Ends in .safetensors: the scripts pick the format from the extension (torch.save for anything else).
    return output.with_name(f".{output.stem}.{secrets.token_hex(4)}.partial.safetensors")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------- checks before starting


def record_path(output: Path) -> Path:
    return output.with_name(output.name + RECORD_SUFFIX)


def check_output(output: Path) -> None:
    if output.suffix.lower() != ".safetensors":
        raise InputError(f"{output}: write a .safetensors file (sd-scripts saves anything else as a pickle)")
    for path in (output, record_path(output)):
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} exists; it is never overwritten: choose another -o")
    if not output.parent.is_dir():
        raise InputError(f"{output.parent} is not a folder")


def check_resize(lora: LoraInfo, dim: int, dynamic: DynamicMethod | None, dynamic_param: float | None) -> list[str]:
    """Errors raise InputError; the notes returned are said before the tool runs."""
    _down_up(lora, "resize_lora.py")
    if dynamic is not None:
        if dynamic_param is None:
            raise InputError(f"--dynamic {dynamic} needs --dynamic-param")
        if dynamic == "sv_ratio" and dynamic_param < 1:
            raise InputError(
                f"--dynamic-param for sv_ratio is the largest singular-value ratio kept: 1 or more "
                f"(got {dynamic_param})"
            )
        if dynamic != "sv_ratio" and not 0 < dynamic_param <= 1:
            raise InputError(
                f"--dynamic-param for {dynamic} is a share of the singular values: above 0, at most 1 "
                f"(got {dynamic_param})"
            )
    elif dynamic_param is not None:
        raise InputError("--dynamic-param goes with --dynamic sv_ratio|sv_fro|sv_cumulative")
    ranks = [r for r in lora.ranks if r is not None]
    if not ranks:
        raise InputError(f"{lora.path} has no ranks to resize")
    if dynamic is None and dim >= max(ranks):
        raise InputError(
            f"--dim {dim} is not below the file's rank ({max(ranks)}): resize_lora.py only lowers ranks "
            "(the extra singular values would be zeros)"
        )
    notes = []
    if dynamic is not None:
        notes.append(f"--dim {dim} is the highest rank {dynamic} may keep per module")
    return notes


def check_merge(loras: list[LoraInfo], model_family: str | None, concat: bool) -> str:
    """The family the scripts are chosen by; errors raise InputError."""
    for info in loras:
        _down_up(info, "merge_lora.py")
    families = {info.path: info.base.get("family") for info in loras}
    known = {f.removesuffix("-v") for f in families.values() if f}
    if len(known) > 1:
        shown = ", ".join(f"{p.name}: {f}" for p, f in families.items() if f)
        raise InputError(f"the LoRAs are for different model families ({shown})")
    if model_family is not None and known and known != {model_family}:
        raise InputError(f"the LoRAs are for {known.pop()}, the model is {model_family}")
    family = model_family or (known.pop() if known else None)
    if family is None:
        raise InputError(
            "the LoRAs do not say which model family they are for (no ss_base_model_version, no telling keys); "
            "merge them into a model with --into"
        )
    if model_family is None and len(loras) > 1 and not concat:
        ranks: dict[str, set[int | None]] = {}
        for info in loras:
            for m in info.modules:
                ranks.setdefault(m.name, set()).add(m.rank)
        differ = sorted(name for name, seen in ranks.items() if len(seen) > 1)
        if differ:
            raise InputError(
                f"the LoRAs have different ranks ({len(differ)} modules, e.g. {differ[0]}); merge_lora.py adds "
                "weights of equal shape only: pass --concat (the ranks add up) or resize them to one rank first"
            )
    return family


def _down_up(info: LoraInfo, script: str) -> None:
    if info.algo not in DOWN_UP:
        raise InputError(
            f"{info.path} is a {info.network}: {script} only handles lora_down/lora_up networks (LoRA, LoCon, "
            "DyLoRA) and would pass its weights over without a word"
        )


def model_family(model: Path, allow_pickle: bool) -> str:
    try:
        check_model_file(model, allow_pickle)
        found = detect_family(model) if model.suffix.lower() == ".safetensors" else None
    except ModelError as exc:
        raise InputError(str(exc)) from None
    if found is None:
        raise InputError(f"{model}: cannot tell SD1.x, SD2.x or SDXL from its header; merge needs to know")
    return found


# --------------------------------------------------------------------------- running


@dataclass
class Result:
    output: Path
    record: Path
    record_data: dict[str, Any]


def run_job(
    job: Job,
    install: Install,
    *,
    on_event: Callable[[Event], None] | None = None,
    on_hash: Callable[[str], None] | None = None,
) -> Result:
    """Run the tool; on success link its output into place (never over a file) and write the record."""
    from .. import __version__
    from .process import run_parsed

    check_output(job.output)
    seen: list[Event] = []

    def forward(event: Event) -> None:
        seen.append(event)
        if on_event is not None:
            on_event(event)

    started = _now()
    try:
        code = run_parsed(job.argv, {**os.environ, **job.env}, job.cwd, forward)
        if code != 0:
            raise LoraToolError(_failure(job, code, seen, install.python))
        if not job.partial.is_file():
            raise LoraToolError(f"{job.tool} exited 0 but wrote no {job.partial.name}")
        _claim(job)
    finally:
        with contextlib.suppress(OSError):
            job.partial.unlink()
    finished = _now()

    def digest(path: Path) -> str:
        if on_hash is not None:
            on_hash(path.name)
        return sha256_file(path)

    inputs = [
        {"role": role, "path": str(path.resolve()), "size": path.stat().st_size, "sha256": digest(path)}
        for role, path in job.inputs
    ]
    data: dict[str, Any] = {
        "version": 1,
        "tool": job.tool,
        "inputs": inputs,
        "output": {"path": str(job.output.resolve()), "size": job.output.stat().st_size, "sha256": digest(job.output)},
        "command": job.argv,
        "written_as": job.partial.name,
        "sd_scripts": {"dir": str(install.dir), "commit": install.commit or describe_commit(None)},
        "python": install.python,
        "artlab_kohya": __version__,
        "started": started,
        "finished": finished,
        "notes": job.notes,
    }
    record = record_path(job.output)
    write_json_atomic(record, data)
    return Result(job.output, record, data)


def _claim(job: Job) -> None:
    """Give the partial file the output's name unless something took that name meanwhile."""
    try:
        os.link(job.partial, job.output)  # fails if the name exists: nothing is overwritten
        return
    except FileExistsError:
        raise LoraToolError(f"{job.output} appeared while {job.tool} ran; the result is left unused") from None
    except OSError:  # a file system without hard links: check, then rename (a small window, said here)
        pass
    if job.output.exists() or job.output.is_symlink():
        raise LoraToolError(f"{job.output} appeared while {job.tool} ran; the result is left unused")
    os.rename(job.partial, job.output)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _failure(job: Job, code: int, events: list[Event], python: str) -> str:
    missing = next((e for e in events if isinstance(e, ModuleNotFound)), None)
    if missing is not None:
        return wrong_python(python, missing.module)
    detail, _ = last_traceback(events)
    if code < 0 or code >= 128:
        detail += " (killed: out of memory?)" if code in (137, -9) else ""
    return f"{job.tool} failed with status {code}{detail}"
