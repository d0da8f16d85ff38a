#!/usr/bin/env bash
# Sets up, outside the repository, what the engine-marked tests (pytest -m engine) need: the real
# sd-scripts, a CPU-only trainer venv with the versions we test against, a random-initialised SD1.5
# checkpoint built with sd-scripts' own code, and the real CLIP tokenizer rebuilt from open-clip's BPE
# file (nothing but registry packages is downloaded; no model weights).
#
#   scripts/setup_engine.sh [SD_SCRIPTS_DIR] [PREFIX]     then: source PREFIX/env.sh
#
# SD_SCRIPTS_DIR: an sd-scripts checkout at the pinned commit (default: $ARTLAB_KOHYA_DIR, else the
# vendored submodule, fetched with `git submodule update --init vendor/sd-scripts`). PREFIX defaults to
# ~/.cache/artlab-kohya/engine. The first run takes about 5 minutes (torch for CPU, ~2 GB) and writes a
# 2 GB checkpoint; later runs reuse everything. env.sh exports ARTLAB_KOHYA_DIR, ENGINE_PYTHON,
# ENGINE_MODEL, ENGINE_TOKENIZERS and HF_HUB_OFFLINE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
SD=${1:-${ARTLAB_KOHYA_DIR:-vendor/sd-scripts}}
P=${2:-$HOME/.cache/artlab-kohya/engine}
if [ ! -f "$SD/train_network.py" ] && [ "$SD" = vendor/sd-scripts ]; then
  git submodule update --init vendor/sd-scripts
fi
[ -f "$SD/train_network.py" ] || { echo "no train_network.py in $SD: pass an sd-scripts folder" >&2; exit 1; }
SD=$(cd "$SD" && pwd)
mkdir -p "$P"
P=$(cd "$P" && pwd)

# The trainer: CPU torch and the versions in artlab_kohya/trainer/pins.py (pyproject's `trainer` extra).
if [ ! -x "$P/venv/bin/python" ]; then
  python3 -m venv "$P/venv"
  "$P/venv/bin/pip" install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 accelerate==1.6.0 \
    diffusers==0.32.1 transformers==4.54.1 huggingface-hub==0.34.3 safetensors==0.4.5 tokenizers==0.21.4 \
    toml==0.10.2 voluptuous==0.15.2 ftfy einops==0.7.0 imagesize==1.4.1 opencv-python-headless==4.10.0.84 \
    tensorboard rich lycoris-lora==3.4.0
fi

# artlab-kohya itself, to build the assets with its own code (the trainer need not have it installed).
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .

# The real CLIP tokenizer: its BPE merges ship inside the open-clip-torch wheel (read, not installed).
mkdir -p "$P/wheels"
ls "$P"/wheels/open_clip_torch-*.whl >/dev/null 2>&1 ||
  "$P/venv/bin/pip" download -q --no-deps open-clip-torch==3.3.0 -d "$P/wheels"
WHEEL=$(ls "$P"/wheels/open_clip_torch-*.whl | head -1)

.venv/bin/python - "$SD" "$P" "$P/venv/bin/python" "$WHEEL" <<'PY'
import gzip, json, sys, zipfile
from pathlib import Path
from artlab_kohya.trainer.doctor import smoke_assets, write_toy_clip_tokenizer
from artlab_kohya.trainer.install import locate_install

sd, prefix, python, wheel = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("bpe_simple_vocab_16e6.txt.gz"))
    lines = gzip.decompress(z.read(name)).decode("utf-8").split("\n")
merges = lines[1 : 49152 - 256 - 2 + 1]  # the slice OpenAI's SimpleTokenizer takes
tokenizers = write_toy_clip_tokenizer(Path(prefix) / "tokenizers", merges)
# SD2's and SDXL's second tokenizer: the same BPE, padded with "!" (id 0) instead of <|endoftext|>
clip_l = tokenizers / "openai_clip-vit-large-patch14"
for folder in ("stabilityai_stable-diffusion-2", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"):
    target = tokenizers / folder
    target.mkdir(exist_ok=True)
    for f in clip_l.iterdir():
        text = f.read_text(encoding="utf-8")
        if f.name in ("tokenizer_config.json", "special_tokens_map.json"):
            data = json.loads(text)
            data["pad_token"] = "!"
            text = json.dumps(data, indent=2)
        (target / f.name).write_text(text, encoding="utf-8")
model, _ = smoke_assets(locate_install(sd, python), Path(prefix) / "models", on_status=print)
Path(prefix, "env.sh").write_text(
    f'export ARTLAB_KOHYA_DIR="{sd}" ENGINE_PYTHON="{python}" ENGINE_MODEL="{model}" '
    f'ENGINE_TOKENIZERS="{tokenizers}" HF_HUB_OFFLINE=1\n'
)
print(f"source {prefix}/env.sh")
PY
