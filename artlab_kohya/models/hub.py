"""Where a base model comes from: a local file, or a Hugging Face hub file pinned to a commit and a
sha256. `huggingface_hub` is imported inside the functions that reach the hub, so `--help` stays instant."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import settings
from ..spec.families import ALIASES, Architecture
from .checkpoint import (
    ModelError,
    check_model_file,
    detect_family,
    prediction_type,
    read_safetensors_header,
    refuse_pickle,
)
from .hashing import sha256_file


@dataclass(frozen=True)
class ResolvedModel:
    """A base model pinned down: the exact file, its hash, and for hub files the commit it came from."""

    path: Path
    family: Architecture | None
    sha256: str
    size: int
    source: Literal["local", "hub"]
    repo: str | None = None
    filename: str | None = None
    revision_requested: str | None = None
    commit: str | None = None
    prediction: str | None = None  # what the file's metadata says it predicts ("epsilon", "v"), if anything


def _prediction(path: Path) -> str | None:
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return None
    return prediction_type(read_safetensors_header(path))


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
    return ResolvedModel(
        path=path,
        family=family,
        sha256=sha256_file(path),
        size=path.stat().st_size,
        source="local",
        prediction=_prediction(path),
    )


class NotDownloaded(ModelError):
    """A hub file that is not in the local cache, looked for without the network (offline, or only the
    cache asked); `what` names it as repo/file@revision."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__(message)
        self.what = what


def is_offline(offline: bool | None) -> bool:
    return offline if offline is not None else settings.hf_offline()


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
    page = f"{settings.hf_endpoint()}/{repo}"
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
        switch = "HF_HUB_OFFLINE" if settings.hf_offline() else "--offline"
        return NotDownloaded(
            f"{what} is not in the local hub cache and offline mode is on ({switch}): "
            "download it once with network access (`artlab-kohya fetch SPEC`)",
            what,
        )
    if isinstance(exc, hf.LocalEntryNotFoundError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({_one_line(type(cause).__name__ + ': ' + str(cause), 120)})" if cause else ""
        return ModelError(
            f"cannot reach the hub at {settings.hf_endpoint()}{detail} and {what} is not in the local cache: "
            "check the network or proxy, or set HF_HUB_OFFLINE=1 to use cached files only"
        )
    if isinstance(exc, ValueError):  # e.g. HFValidationError for a malformed repo id
        return ModelError(f"invalid hub reference {what}: {_one_line(exc)}")
    return ModelError(f"download of {what} failed: {type(exc).__name__}: {_one_line(exc)}")


def hub_download(repo: str, filename: str, revision: str, *, offline: bool, subfolder: str | None = None) -> Path:
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
                cache_dir=settings.hf_hub_cache(),  # read now: huggingface_hub reads its variables once, at import
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
    refuse_pickle(filename, allow_pickle)  # before downloading gigabytes we would refuse
    offline_now = is_offline(offline)
    path = hub_download(repo, filename, revision, offline=offline_now)
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
        prediction=_prediction(path),
    )


def resolve_alias(name: str, *, offline: bool | None = None, verify: bool = False) -> ResolvedModel:
    """`sd15`, `sdxl` or `sd2`: the repository and file in ALIASES, at its main branch."""
    alias = next((a for n, a in ALIASES.items() if n == name), None)
    if alias is None:
        raise ModelError(f"unknown model alias {name!r}; known: {', '.join(sorted(ALIASES))}")
    return resolve_hub(alias.repo, alias.filename, "main", offline=offline, verify=verify)
