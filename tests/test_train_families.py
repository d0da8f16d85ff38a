"""`run` for the families beside SD1.5, against the stand-in install replaying real transcripts.

tests/data/transcripts/sdxl_buckets.* is a real SDXL run through `artlab-kohya run` on an H200
(random-init SDXL, 24 images in four aspect ratios x 2 repeats, buckets 512-2048, batch 4, 2 epochs,
text-encoder outputs cached). Here the same spec runs against tests/fake_kohya/sdxl_train_network.py,
which replays it: the plan's numbers must be the trainer's, and the record must say SDXL. Likewise
flux_lora.* (FLUX.1 dev on an H200), and sd3_tiny_cpu.*, sd3_medium_tiny_cpu.* and
flux_schnell_tiny_cpu.* (tiny SD3.5 large, SD3 medium and FLUX.1 schnell on a CPU, as
tests/test_engine_families.py runs them), and sd3_lora.*, sd3_swap_lora.*, sd3_locon_lora.* (SD3.5 large
on an H200: plain, with blocks swapped, as a LyCORIS locon).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from replay import parse_transcript

from artlab_kohya.build.plan import Plan, make_plan
from artlab_kohya.models.checkpoint import ModelError
from artlab_kohya.run.train import RunOptions, run_spec
from artlab_kohya.spec import load_spec
from artlab_kohya.trainer.output import TrainingSummary

HERE = Path(__file__).parent
FAKE = HERE / "fake_kohya"
TRANSCRIPTS = HERE / "data" / "transcripts"
ASPECTS = ((1024, 1024), (1216, 832), (832, 1216), (1344, 768))  # as the GPU run had them


def fake_model(path: Path) -> Path:
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def tokenizers(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        target = folder / name
        target.mkdir(parents=True)
        for file in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            (target / file).write_text("{}")
    return folder


def plan_numbers(plan: Plan) -> tuple[int, int, int, int]:
    return plan.train_images_x_repeats, plan.batches_per_epoch, plan.epochs, plan.total_steps


def trainer_numbers(transcript: str) -> tuple[int, int, int, int]:
    """The same numbers as the trainer printed them in a transcript ("total optimization steps", ...)."""
    stdout, stderr = ((TRANSCRIPTS / f"{transcript}.{s}").read_text(encoding="utf-8") for s in ("stdout", "stderr"))
    summary = next(e for e in parse_transcript(stdout, stderr) if isinstance(e, TrainingSummary))
    return summary.train_images, summary.batches_per_epoch, summary.epochs, summary.total_steps


@pytest.fixture
def sdxl_project(tmp_path, images, monkeypatch):
    images(tmp_path / "img", [ASPECTS[i % 4] for i in range(24)], caption="bench, a colour field")
    fake_model(tmp_path / "base.safetensors")
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    folders = ("openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k")
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tokenizers(tmp_path / "tok", folders)))
    monkeypatch.setenv("FAKE_TRANSCRIPT", "sdxl_buckets")
    (tmp_path / "spec.yaml").write_text(
        "model:\n  source: base.safetensors\n  family: sdxl\n"
        "dataset:\n  resolution: 1024\n  batch_size: 4\n"
        "  buckets:\n    enabled: true\n    min_resolution: 512\n    max_resolution: 2048\n    step: 64\n"
        "  subsets:\n    - path: img\n      repeats: 2\n      class_tokens: bench\n"
        "network:\n  type: lora\n  dim: 32\n  alpha: 16\n  train: unet\n"
        "training:\n  epochs: 2\n  save_every_n_epochs: 1\n  cache_text_encoder_outputs: memory\n"
        "output:\n  name: tiny_lora\n  log_with: none\n"
        f"kohya:\n  dir: {FAKE}\n  python: {sys.executable}\n"
    )
    return tmp_path


def test_the_sdxl_plan_is_the_trainers(sdxl_project):
    plan = make_plan(load_spec(sdxl_project / "spec.yaml"))
    assert plan_numbers(plan) == trainer_numbers("sdxl_buckets") == (48, 12, 2, 24)
    stderr = (TRANSCRIPTS / "sdxl_buckets.stderr").read_text(encoding="utf-8")
    # the trainer's bucket table (stderr "bucket N: resolution (W, H), count: C") against the plan's
    logged = {
        (int(w), int(h)): int(c)
        for w, h, c in (
            line.split("resolution (")[1].split(")")[0].split(", ") + [line.split("count: ")[1].split()[0]]
            for line in stderr.splitlines()
            if "INFO     bucket " in line
        )
    }
    assert logged == plan.buckets
    assert plan.family == "sdxl" and plan.lora_params == 85115602  # the LoRA the GPU run saved


def test_an_sdxl_run_replayed_is_recorded_as_sdxl(sdxl_project):
    outcome = run_spec(load_spec(sdxl_project / "spec.yaml"), RunOptions(runs_root=sdxl_project / "runs", plain=True))
    assert (outcome.status, outcome.exit_code) == ("succeeded", 0)
    folder = outcome.folder
    lock = yaml.safe_load((folder / "spec.lock.yaml").read_text())
    assert lock["model"]["family"] == "sdxl" and lock["kohya"]["script"] == "sdxl_train_network.py"
    assert lock["argv"][-3].endswith("sdxl_train_network.py") and lock["plan"]["total_steps"] == 24
    config = (folder / "config.toml").read_text()
    assert "cache_text_encoder_outputs = true" in config and "network_train_unet_only = true" in config
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "Step"]
    assert steps[-1]["step"] == 24 and steps[-1]["epoch"] == 2
    result = json.loads((folder / "result.json").read_text())
    assert [Path(c["file"]).name for c in result["checkpoints"]] == [
        "tiny_lora-000001.safetensors",
        "tiny_lora.safetensors",
    ]


def test_a_flux_run_resolves_its_files_and_records_them(tmp_path, images, monkeypatch):
    """FLUX.1 through `run` against the stand-in flux_train_network.py replaying the real FLUX.1 run
    (flux_lora.*: full-size random FLUX.1 dev on an H200, the same spec): the transformer and its three
    files (local, one pinned by sha256), the CLIP-L and T5 tokenizer folders, the family's arguments,
    and the plan's total against the trainer's."""
    import hashlib

    images(tmp_path / "img", [(512, 512)] * 16, caption="bench, a colour field")
    keys = [f"double_blocks.{i}.img_attn.qkv.weight" for i in range(19)]  # the full-size transformer's blocks
    keys += [f"single_blocks.{i}.linear1.weight" for i in range(38)]
    header = {k: {"dtype": "F16", "shape": [0], "data_offsets": [0, 0]} for k in keys}
    raw = json.dumps(header).encode()
    (tmp_path / "flux.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw)
    for name in ("ae", "clip_l", "t5xxl"):
        fake_model(tmp_path / f"{name}.safetensors")
    t5_sha = hashlib.sha256((tmp_path / "t5xxl.safetensors").read_bytes()).hexdigest()
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    tok = tokenizers(tmp_path / "tok", ("openai_clip-vit-large-patch14",))
    (tok / "google_t5-v1_1-xxl").mkdir()
    for file in ("tokenizer.json", "tokenizer_config.json"):
        (tok / "google_t5-v1_1-xxl" / file).write_text("{}")
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tok))
    monkeypatch.setenv("FAKE_TRANSCRIPT", "flux_lora")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model:\n  source: flux.safetensors\n  family: auto\n  ae: ae.safetensors\n  clip_l: clip_l.safetensors\n"
        f"  t5xxl:\n    path: t5xxl.safetensors\n    sha256: {t5_sha}\n"
        "dataset:\n  resolution: 512\n  batch_size: 2\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img\n      repeats: 10\n      class_tokens: bench\n"
        "network:\n  type: lora\n  dim: 16\n  alpha: 16\n  train: unet\n"
        "training:\n  epochs: null\n  max_steps: 30\n  cache_text_encoder_outputs: memory\n"
        "output:\n  name: tiny_lora\n  log_with: none\n"
        f"kohya:\n  dir: {FAKE}\n  python: {sys.executable}\n"
    )
    outcome = run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs", plain=True))
    assert (outcome.status, outcome.exit_code) == ("succeeded", 0), outcome.diagnosis
    lock = yaml.safe_load((outcome.folder / "spec.lock.yaml").read_text())
    assert lock["model"]["family"] == "flux1" and lock["kohya"]["script"] == "flux_train_network.py"
    config = (outcome.folder / "config.toml").read_text()
    for name in ("ae", "clip_l", "t5xxl"):
        assert f'{name} = "{tmp_path / (name + ".safetensors")}"' in config
    assert 'network_module = "networks.lora_flux"' in config and "guidance_scale = 1.0" in config
    events = [json.loads(line) for line in (outcome.folder / "events.jsonl").read_text().splitlines()]
    summary = next(e for e in events if e["type"] == "TrainingSummary")
    assert summary["total_steps"] == lock["plan"]["total_steps"] == 30
    plan = make_plan(load_spec(spec))
    assert plan.lora_params == 76579120  # the GPU run's LoRA: 912 tensors, 76,579,120 parameters
    assert abs(plan.lora_bytes - 153271240) < 1000  # and 153,271,240 bytes (the metadata is estimated)

    lock_t5 = lock["components"]["t5xxl"]
    assert lock_t5["sha256"] == t5_sha and lock_t5["path"] == str(tmp_path / "t5xxl.safetensors")

    # a pinned sha256 that does not match stops the run before its folder exists, saying which file
    spec.write_text(spec.read_text().replace(t5_sha, "f" * 64))
    with pytest.raises(ModelError, match=r"model\.t5xxl: .* has SHA-256 .*, not the f{64} the spec pins"):
        run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs2", plain=True))
    assert not (tmp_path / "runs2").exists()


@dataclass(frozen=True)
class Tiny:
    """A tiny run on a CPU with the real trainer (tests/test_engine_families.py), kept as a transcript."""

    family: str
    transcript: str
    files: dict[str, str]  # spec key under model: -> the file the builder writes (without .safetensors)
    section: str  # the family's own spec section
    header: tuple[str, ...]  # tensor names that make a stand-in model file read as this family
    tokenizers: tuple[str, ...]  # the CLIP tokenizer folders it needs (T5's is built beside them)
    builder: tuple[str, ...]  # build_*_random.py and its arguments after SD_SCRIPTS_DIR ({out}, {tokenizers})
    network: str = "lora"  # network.type


CLIP_L, CLIP_G = "openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"
TINY = {
    "sd3": Tiny(
        "sd3",
        "sd3_tiny_cpu",
        {"source": "sd3_random", "clip_l": "clip_l_random", "clip_g": "clip_g_random", "t5xxl": "t5xxl_random"},
        "sd3",
        tuple(
            f"model.diffusion_model.joint_blocks.0.{k}"
            for k in ("x_block.attn.qkv.weight", "context_block.attn.ln_k.weight")
        ),
        (CLIP_L, CLIP_G),
        ("build_sd3_random.py", "{out}", "0", "tiny-sd3.5-large", "{tokenizers}"),
    ),
    "flux1": Tiny(
        "flux1",
        "flux_schnell_tiny_cpu",
        {"source": "flux1_random", "ae": "ae_random", "clip_l": "clip_l_random", "t5xxl": "t5xxl_random"},
        "flux",
        ("double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"),  # no guidance_in: schnell
        (CLIP_L,),
        ("build_flux_random.py", "{out}", "0", "1,1", "{tokenizers}", "schnell"),
    ),
}
# recorded with the text encoders of the "sd3" set, so no engine test of its own (it would need its own 11.5 GB)
TINY["sd3-medium"] = replace(
    TINY["sd3"],
    transcript="sd3_medium_tiny_cpu",
    header=tuple(h.replace(".ln_k.", ".qkv.") for h in TINY["sd3"].header),  # no q/k norms: SD3 medium
    builder=tuple(a.replace("tiny-sd3.5-large", "tiny-sd3-medium") for a in TINY["sd3"].builder),
)
# the "sd3" set with a LyCORIS locon (lycoris-lora 3.4.0) rather than networks.lora_sd3
TINY["sd3-locon"] = replace(TINY["sd3"], transcript="sd3_locon_tiny_cpu", network="locon")


def tiny_spec(folder: Path, name: str, files: Path, kohya_dir: str | Path, python: str) -> Path:
    """The spec of a tiny run (TINY[name]) on the model files in `files`: 10 images at 64 px in
    folder/img, 2 repeats, batch 4, 2 epochs, LoRA dim 4 on the transformer, bf16, everything cached,
    32 T5 tokens."""
    tiny = TINY[name]
    model = "".join(f"  {key}: {files / file}.safetensors\n" for key, file in tiny.files.items())
    spec = folder / "spec.yaml"
    spec.write_text(
        f"model:\n{model}  family: auto\n"
        "dataset:\n  resolution: 64\n  batch_size: 4\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img\n      repeats: 2\n      class_tokens: bench\n"
        f"network:\n  type: {tiny.network}\n  dim: 4\n  alpha: 4\n  train: unet\n"
        "training:\n  epochs: 2\n  save_every_n_epochs: 1\n  mixed_precision: bf16\n"
        "  cache_latents: memory\n  cache_text_encoder_outputs: memory\n"
        f"{tiny.section}:\n  t5xxl_max_token_length: 32\n"
        "output:\n  name: tiny_lora\n  log_with: none\n"
        f"kohya:\n  dir: {kohya_dir}\n  python: {python}\n"
    )
    return spec


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_tiny_cpu_run_replayed_is_recorded_as_its_family(tmp_path, images, monkeypatch, name):
    """SD3 and FLUX.1 through `run` against the stand-in scripts replaying what the real
    sd3_train_network.py / flux_train_network.py printed for this spec on a CPU (TINY): the family (and
    SD3's variant, FLUX.1's schnell) read from the header, its files, its tokenizer folders, its own
    section's arguments, and the plan's numbers against the trainer's."""
    tiny, family = TINY[name], TINY[name].family
    images(tmp_path / "img", [(64, 64)] * 10, caption="bench, a colour field")
    raw = json.dumps({k: {"dtype": "BF16", "shape": [0], "data_offsets": [0, 0]} for k in tiny.header}).encode()
    models = tmp_path / "models"
    models.mkdir()
    (models / f"{tiny.files['source']}.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw)
    for key, file in tiny.files.items():
        if key != "source":
            fake_model(models / f"{file}.safetensors")
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    tok = tokenizers(tmp_path / "tok", tiny.tokenizers)
    (tok / "google_t5-v1_1-xxl").mkdir()
    for file in ("tokenizer.json", "tokenizer_config.json"):
        (tok / "google_t5-v1_1-xxl" / file).write_text("{}")
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tok))
    monkeypatch.setenv("FAKE_TRANSCRIPT", tiny.transcript)
    spec = tiny_spec(tmp_path, name, models, FAKE, sys.executable)

    plan = make_plan(load_spec(spec))
    assert plan_numbers(plan) == trainer_numbers(tiny.transcript) == (20, 5, 2, 10)
    assert plan.family == family

    outcome = run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs", plain=True))
    assert (outcome.status, outcome.exit_code) == ("succeeded", 0), outcome.diagnosis
    lock = yaml.safe_load((outcome.folder / "spec.lock.yaml").read_text())
    assert lock["model"]["family"] == family
    assert lock["kohya"]["script"] == f"{tiny.section}_train_network.py"
    assert sorted(lock["components"]) == sorted(k for k in tiny.files if k != "source")
    config = (outcome.folder / "config.toml").read_text()
    for key, file in tiny.files.items():
        if key != "source":
            assert f'{key} = "{models / file}.safetensors"' in config
    module = f"networks.lora_{tiny.section}" if tiny.network == "lora" else "lycoris.kohya"
    assert f'network_module = "{module}"' in config and "t5xxl_max_token_length = 32" in config
    events = [json.loads(line) for line in (outcome.folder / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "Step"]
    assert (steps[-1]["step"], steps[-1]["epoch"]) == (10, 2)
    result = json.loads((outcome.folder / "result.json").read_text())
    assert [Path(c["file"]).name for c in result["checkpoints"]] == [
        "tiny_lora-000001.safetensors",
        "tiny_lora.safetensors",
    ]


H200 = {"name": "NVIDIA H200", "total_memory": 150_754_820_096, "major": 9, "minor": 0}
SD3_GPU = {  # transcript -> what its spec adds to the plain one, and what the config must then say
    "sd3_lora": ("", 'network_module = "networks.lora_sd3"'),
    "sd3_swap_lora": ("  blocks_to_swap: 8\n", "blocks_to_swap = 8"),
    "sd3_locon_lora": ("", 'network_module = "lycoris.kohya"'),
}


@pytest.mark.parametrize("transcript", sorted(SD3_GPU))
def test_an_sd3_gpu_run_replayed_plans_and_records_as_the_card_did(tmp_path, images, monkeypatch, transcript):
    """SD3.5 large through `run` against the stand-in sd3_train_network.py replaying what the real one printed
    on an H200 for this spec (full-size random-init SD3.5 large, 38 joint blocks; plain, with 8 blocks swapped,
    and as a LyCORIS locon): the variant read from the header, the plan's numbers and LoRA size against the
    card's run (the same for all three: lycoris wraps the same Linears), the option in the config, and the
    checkpoint recorded."""
    training, rendered = SD3_GPU[transcript]
    images(tmp_path / "img", [(1024, 1024)] * 16, caption="bench, a colour field")
    keys = [f"model.diffusion_model.joint_blocks.{i}.x_block.attn.qkv.weight" for i in range(38)]
    keys.append("model.diffusion_model.joint_blocks.0.context_block.attn.ln_k.weight")  # q/k norms: SD3.5
    raw = json.dumps({k: {"dtype": "BF16", "shape": [0], "data_offsets": [0, 0]} for k in keys}).encode()
    (tmp_path / "sd3.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw)
    for name in ("clip_l", "clip_g", "t5xxl"):
        fake_model(tmp_path / f"{name}.safetensors")
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    tok = tokenizers(tmp_path / "tok", (CLIP_L, CLIP_G))
    (tok / "google_t5-v1_1-xxl").mkdir()
    for file in ("tokenizer.json", "tokenizer_config.json"):
        (tok / "google_t5-v1_1-xxl" / file).write_text("{}")
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tok))
    monkeypatch.setenv("FAKE_TRANSCRIPT", transcript)
    monkeypatch.setenv("FAKE_CUDA_GPU", json.dumps(H200))  # SD3 block swap is refused without a CUDA card
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model:\n  source: sd3.safetensors\n  family: auto\n"
        "  clip_l: clip_l.safetensors\n  clip_g: clip_g.safetensors\n  t5xxl: t5xxl.safetensors\n"
        "dataset:\n  resolution: 1024\n  batch_size: 2\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img\n      repeats: 10\n      class_tokens: bench\n"
        f"network:\n  type: {'locon' if 'locon' in transcript else 'lora'}\n  dim: 16\n  alpha: 16\n  train: unet\n"
        "training:\n  epochs: null\n  max_steps: 30\n  save_precision: fp16\n  cache_text_encoder_outputs: memory\n"
        f"{training}output:\n  name: tiny_lora\n  log_with: none\n"
        f"kohya:\n  dir: {FAKE}\n  python: {sys.executable}\n"
    )
    plan = make_plan(load_spec(spec))
    assert plan_numbers(plan) == trainer_numbers(transcript) == (160, 80, 1, 30)
    assert plan.lora_params == 67395961  # each card run's LoRA: 1,131 tensors, 67,395,961 parameters
    assert abs(plan.lora_bytes - 134941778) < 1000  # and 134,941,778-818 bytes (the metadata is estimated)

    outcome = run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs", plain=True))
    assert (outcome.status, outcome.exit_code) == ("succeeded", 0), outcome.diagnosis
    lock = yaml.safe_load((outcome.folder / "spec.lock.yaml").read_text())
    assert (lock["model"]["family"], lock["kohya"]["script"]) == ("sd3", "sd3_train_network.py")
    assert rendered in (outcome.folder / "config.toml").read_text()
    events = [json.loads(line) for line in (outcome.folder / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["type"] == "Step"][-1] == 30
    result = json.loads((outcome.folder / "result.json").read_text())
    assert [Path(c["file"]).name for c in result["checkpoints"]] == ["tiny_lora.safetensors"]
