"""`artlab-kohya doctor`: is this sd-scripts install and its Python able to train, and is it what we test?

Also the assets of `doctor --smoke`, which proves an install end to end without downloading anything:
a random-initialised SD1.5-architecture checkpoint built once with the install's own model code, a
local toy CLIP tokenizer, and a tiny spec and dataset that train a few steps at 64 px.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from .. import settings
from ..models.checkpoint import ModelError, read_safetensors_header
from ..models.tokenizers import install_tokenizer
from .install import (
    TRAIN_SCRIPT,
    Install,
    InstallError,
    check_install,
    compare_versions,
    describe_commit,
    git_commit,
    install_fingerprint,
    read_surface,
    run_engine_script,
    trainer_versions,
    version_tuple,
)
from .pins import PINNED_COMMIT

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class DoctorResult:
    install: Install
    checks: list[Check]
    versions: dict[str, Any] | None = None  # trainer_versions(), when the trainer Python answered
    surface_options: int | None = None

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "install": {"dir": str(self.install.dir), "python": self.install.python, "commit": self.install.commit},
            "checks": [asdict(c) for c in self.checks],
            "versions": self.versions,
        }


def run_doctor(install: Install, *, surface: bool = True) -> DoctorResult:
    """The checks plus what they found, for `doctor --json` and for choosing the smoke run's precision."""
    from .. import __version__

    result = DoctorResult(install, [])
    add = result.checks.append
    add(Check("artlab-kohya", "ok", f"{__version__} on Python {platform.python_version()} ({sys.executable})"))
    try:
        check_install(install)
    except InstallError as exc:
        add(Check("sd-scripts", "fail", str(exc)))
        return result
    add(Check("sd-scripts", "ok", str(install.dir)))
    add(_commit_check(install.commit))
    try:
        versions = trainer_versions(install)
    except InstallError as exc:
        add(Check("trainer Python", "fail", str(exc)))
        return result
    result.versions = versions
    result.checks += environment_checks(install, versions)
    if surface and not result.failed:
        add(_surface_check(install, result))
    return result


def _commit_check(commit: str | None) -> Check:
    tested = PINNED_COMMIT[:8]
    if commit is None:
        return Check("sd-scripts commit", "warn", f"unknown: not a git checkout; we test against {tested}")
    if commit == PINNED_COMMIT:
        return Check("sd-scripts commit", "ok", f"{commit[:8]}, the commit we test against")
    return Check("sd-scripts commit", "warn", f"{commit[:8]}: untested; we test against {tested}")


def environment_checks(install: Install, versions: dict[str, Any]) -> list[Check]:
    """The trainer environment as trainer_versions() saw it: Python, packages against what we test, GPUs."""
    checks = []
    py = str(versions.get("python", "?"))
    py_status: Status = "ok" if version_tuple(py) >= (3, 10) else "warn"
    note = "" if py_status == "ok" else "; sd-scripts needs Python 3.10 or newer"
    checks.append(Check("trainer Python", py_status, f"{install.python} (Python {py}; {install.python_from}){note}"))
    torch = versions.get("torch") or {}
    if "error" in torch:
        checks.append(Check("torch", "fail", f"cannot import torch: {torch['error']}"))
    packages = dict(versions.get("packages") or {})
    for v in compare_versions(packages):
        if v.package == "torch" and "error" in torch:
            continue
        shown = v.found if v.package != "torch" else str(torch.get("version", v.found))
        detail = f"{shown} ({v.note})" if v.found else v.note
        checks.append(Check(v.package, v.status, detail))
    if "error" not in torch:
        checks += _gpu_checks(torch)
    for optional in ("bitsandbytes", "xformers"):
        if packages.get(optional):
            checks.append(Check(optional, "ok", f"{packages[optional]} (optional)"))
    if modules := versions.get("modules"):
        checks.append(_modules_check(modules))
    return checks


def _modules_check(modules: dict[str, str | None]) -> Check:
    """What imports in the trainer's Python: accelerate must; the rest only the specs that use them need."""
    found = sorted(name for name, error in modules.items() if error is None)
    missing = sorted(name for name, error in modules.items() if error is not None)
    detail = f"imports {', '.join(found) or 'none of them'}"
    if missing:
        detail += f"; not {', '.join(missing)} (a spec that needs one is refused before launch)"
    if modules.get("accelerate") is not None:
        return Check("modules", "fail", f"cannot import accelerate ({modules['accelerate']}); {detail}")
    return Check("modules", "ok", detail)


def _gpu_checks(torch: dict[str, Any]) -> list[Check]:
    cuda = torch.get("cuda")
    if not torch.get("cuda_available"):
        if cuda is None:
            detail = "CPU-only torch build: training runs on the CPU (seconds per step at 64 px, far slower at 512)"
        else:
            detail = (
                f"torch is a CUDA {cuda} build but sees no GPU (driver, CUDA_VISIBLE_DEVICES?): "
                "training would run on the CPU"
            )
        if torch.get("cuda_error"):
            detail += f" ({torch['cuda_error']})"
        return [Check("CUDA", "warn", detail)]
    gpus = torch.get("gpus") or []
    checks = [Check("CUDA", "ok", f"CUDA {cuda}, {len(gpus)} GPU(s); bf16 {'yes' if torch.get('bf16') else 'no'}")]
    for i, gpu in enumerate(gpus):
        gib = int(gpu.get("memory_bytes", 0)) / 2**30
        detail = f"{gpu.get('name')}, {gib:.1f} GiB, compute capability {gpu.get('capability')}"
        status: Status = "ok"
        if gib < 6:
            status, detail = "warn", detail + "; below 6 GB: batch 1 with gradient checkpointing"
        checks.append(Check(f"GPU {i}", status, detail))
    if gpus and not torch.get("bf16"):
        checks.append(Check("bf16", "warn", "not supported on this GPU: set training.mixed_precision: fp16"))
    return checks


def _surface_check(install: Install, result: DoctorResult) -> Check:
    from .surface import bundled_surface

    try:
        surface = read_surface(install, TRAIN_SCRIPT)
    except InstallError as exc:
        return Check("argument surface", "fail", str(exc))
    result.surface_options = len(surface.options)
    pinned = bundled_surface(TRAIN_SCRIPT).options
    if surface.options == pinned:
        return Check(
            "argument surface",
            "ok",
            f"{TRAIN_SCRIPT}: {len(surface.options)} arguments, the same as at the commit we test against",
        )
    gone = sorted(set(pinned) - set(surface.options))
    new = sorted(set(surface.options) - set(pinned))
    changed = sorted(k for k in set(pinned) & set(surface.options) if pinned[k] != surface.options[k])
    parts = [f"{label}: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}" for label, names in
             (("missing", gone), ("new", new), ("changed", changed)) if names]  # fmt: skip
    return Check(
        "argument surface",
        "warn" if gone or changed else "ok",
        f"{TRAIN_SCRIPT} at {describe_commit(surface.commit if surface.commit != 'unknown' else None)}: "
        f"{len(surface.options)} arguments; against the tested commit {'; '.join(parts)}",
    )


_MARKS = {"ok": ("[green]✓[/]", "ok"), "warn": ("[yellow]![/]", "warn"), "fail": ("[red]✗[/]", "FAIL")}


def print_report(checks: list[Check], console: Any = None) -> None:
    """One line a check: a mark, the name, what was found."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    for check in checks:
        mark, _ = _MARKS[check.status]
        table.add_row(mark, escape(check.name), escape(check.detail))
    console.print(table)
    fails = sum(c.status == "fail" for c in checks)
    warns = sum(c.status == "warn" for c in checks)
    summary = "[red]not ready[/]" if fails else "[green]ready[/]"
    console.print(f"{summary}: {fails} failure(s), {warns} warning(s)")


def smoke_precision(versions: dict[str, Any] | None) -> Literal["no", "fp16", "bf16"]:
    """bf16 where the GPU has it, fp16 on older GPUs, no mixed precision on the CPU."""
    torch = (versions or {}).get("torch") or {}
    if not torch.get("cuda_available"):
        return "no"
    return "bf16" if torch.get("bf16") else "fp16"


# --------------------------------------------------------------------------- smoke assets

SMOKE_SEED = 0
CLIP_L_FOLDER = "openai_clip-vit-large-patch14"  # sd-scripts: tokenizer_cache_dir / hub id with "/" -> "_"
VOCAB_SIZE = 49408  # the SD1 text encoder's embedding table: ids must stay below this
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_MODEL_BYTES = 2_200_000_000


def smoke_assets(
    install: Install,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    on_status: Callable[[str], None] | None = None,
) -> tuple[Path, Path]:
    """(model_path, tokenizer_cache_dir) for the smoke run, built once and then reused.

    The checkpoint is built with the install's own model code in its Python, so it is keyed by the
    install's commit (or, for an exported copy, by its sources). The tokenizer is a toy written here.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else settings.cache_root() / "smoke"
    tokenizers = write_toy_clip_tokenizer(root / "tokenizers")
    commit = install.commit or git_commit(install.dir)
    key = commit[:12] if commit else "nogit-" + install_fingerprint(install, TRAIN_SCRIPT)[:12]
    model = root / f"sd15-random-{key}.safetensors"
    if _is_complete_model(model):
        return model, tokenizers
    check_install(install)
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < _MODEL_BYTES * 1.2:
        raise InstallError(f"building the smoke model needs about 2.2 GB in {root}; {free / 2**30:.1f} GiB free")
    if on_status is not None:
        on_status(
            f"building a random-initialised SD1.5 checkpoint with sd-scripts' own code (once; "
            f"about a minute and 9 GB of memory on a CPU): {model}"
        )
    # sd-scripts picks the format from the extension: anything but .safetensors would be a pickle
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.stem}.", suffix=".tmp.safetensors", dir=root)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        data = run_engine_script(
            install,
            "build_sd15_random.py",
            [str(install.dir), str(tmp), str(SMOKE_SEED)],
            timeout=1800,
            what="building the smoke model",
        )
        if "error" in data:
            raise InstallError(f"building the smoke model failed: {data['error']}: {data.get('message', '')}")
        if not _is_complete_model(tmp):
            raise InstallError(f"building the smoke model wrote no readable safetensors file ({tmp})")
        os.chmod(tmp, 0o644)
        os.replace(tmp, model)
    finally:
        tmp.unlink(missing_ok=True)
    return model, tokenizers


def _is_complete_model(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        read_safetensors_header(path)  # also refuses a truncated file
    except ModelError:
        return False
    return True


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible map from the 256 bytes to printable characters, in CLIP's vocab order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = [chr(b) for b in printable]
    n = 0
    for b in range(256):
        if b not in printable:
            symbols.append(chr(256 + n))
            n += 1
    return symbols


def write_toy_clip_tokenizer(cache_dir: str | os.PathLike[str], merges: list[str] | None = None) -> Path:
    """A CLIP tokenizer folder that needs no download; returns the --tokenizer_cache_dir to pass.

    Without `merges`, a merge-less byte-level BPE: every word becomes single-character tokens, which is
    all a smoke run needs, padded to 49408 entries with <|startoftext|>=49406 and <|endoftext|>=49407,
    the ids of the real tokenizer, so the SD1 text encoder's embedding table fits. With CLIP's 48,894
    merges ("a b" lines, e.g. from open-clip's bpe_simple_vocab_16e6.txt.gz), the real CLIP vocabulary,
    built in the order OpenAI's SimpleTokenizer builds it. Put in place whole (models.tokenizers).
    """
    root = Path(cache_dir).expanduser()
    target = root / CLIP_L_FOLDER
    if all((target / f).is_file() for f in ("vocab.json", "merges.txt", "tokenizer_config.json")):
        return root
    symbols = _byte_symbols()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges or []]
    vocab += [f"<|artlab_unused_{i}|>" for i in range(VOCAB_SIZE - 2 - len(vocab))]
    vocab += [BOS, EOS]
    special = {"content": "", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    files = {
        "vocab.json": json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(m + "\n" for m in merges or []),
        "tokenizer_config.json": json.dumps(
            {
                "added_tokens_decoder": {
                    str(VOCAB_SIZE - 2): special | {"content": BOS, "special": True},
                    str(VOCAB_SIZE - 1): special | {"content": EOS, "special": True},
                },
                "bos_token": BOS,
                "eos_token": EOS,
                "pad_token": EOS,
                "unk_token": EOS,
                "clean_up_tokenization_spaces": False,
                "errors": "replace",
                "model_max_length": 77,
                "tokenizer_class": "CLIPTokenizer",
            },
            indent=2,
        ),
        "special_tokens_map.json": json.dumps(
            {
                "bos_token": special | {"content": BOS},
                "eos_token": special | {"content": EOS},
                "pad_token": EOS,
                "unk_token": special | {"content": EOS},
            },
            indent=2,
        ),
    }
    install_tokenizer(target, {name: text.encode() for name, text in files.items()})
    return root


# --------------------------------------------------------------------------- smoke project

SMOKE_IMAGES = 4
SMOKE_SIZE = 64
SMOKE_SUBSET = "img/1_smoke"
SMOKE_EPOCHS = 2  # 4 images x 2 epochs, batch 1: 8 steps, about 10 s of training on a CPU
SMOKE_DIM = 4


def smoke_spec_yaml(model_path: str | os.PathLike[str], mixed_precision: Literal["no", "fp16", "bf16"] = "no") -> str:
    """The smoke spec's text; the dataset path is relative to the spec file (see write_smoke_project)."""
    return f"""\
# Written by `artlab-kohya doctor --smoke`: a few steps on a random-initialised SD1.5-architecture model,
# to prove the install end to end. Nothing here is downloaded; the LoRA it saves is noise.
model:
  source: {json.dumps(str(Path(model_path).absolute()))}
  family: sd15
dataset:
  resolution: {SMOKE_SIZE}
  batch_size: 1
  buckets:
    enabled: false
  subsets:
    - path: {SMOKE_SUBSET}
      repeats: 1
      class_tokens: smoke
network:
  type: lora
  dim: {SMOKE_DIM}
  alpha: 1
optimizer:
  type: AdamW
  learning_rate: 1.0e-4
training:
  epochs: {SMOKE_EPOCHS}
  save_every_n_epochs: 1
  mixed_precision: "{mixed_precision}"
  cache_latents: memory
  seed: 42
output:
  name: smoke
  log_with: none
"""


def write_smoke_project(
    folder: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    mixed_precision: Literal["no", "fp16", "bf16"] = "no",
) -> Path:
    """Write FOLDER/spec.yaml and FOLDER/img/1_smoke (4 PNGs of 64 px with captions); returns the spec."""
    folder = Path(folder)
    images = folder / SMOKE_SUBSET
    images.mkdir(parents=True, exist_ok=True)
    for i in range(SMOKE_IMAGES):
        (images / f"smoke{i}.png").write_bytes(_png(SMOKE_SIZE, SMOKE_SIZE, i))
        (images / f"smoke{i}.txt").write_text(f"smoke, test image {i}\n", encoding="utf-8")
    spec = folder / "spec.yaml"
    spec.write_text(smoke_spec_yaml(model_path, mixed_precision), encoding="utf-8", newline="\n")
    return spec


def _png(width: int, height: int, seed: int) -> bytes:
    """A small RGB gradient PNG, written with zlib alone (Pillow is not a dependency)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes(((x * 4 + seed * 60) % 256, (y * 4) % 256, (seed * 90 + x + y) % 256))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows))) + chunk(b"IEND", b"")
    )
