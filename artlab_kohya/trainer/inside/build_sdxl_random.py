"""Build a random-initialised SDXL-architecture checkpoint with sd-scripts' own model code.

Run by the trainer's Python, not ours: it imports sd-scripts, torch, diffusers and transformers from the
trainer environment, and nothing of artlab-kohya.

    python build_sdxl_random.py SD_SCRIPTS_DIR MODEL_PATH SEED [PREDICTION] OUT_JSON

sd-scripts' SDXL loader (library/sdxl_model_util.load_models_from_sdxl_checkpoint) builds the full
architecture with fixed configurations: its SdxlUNet2DConditionModel, a CLIP ViT-L text encoder, a
CLIP ViT-bigG text encoder with projection, and the diffusers AutoencoderKL. The checkpoint is therefore
full size (about 3.5e9 parameters, 6.9 GB in fp16), and it is written with sd-scripts' own
save_stable_diffusion_checkpoint, so the key layout is exactly what its loader reads back. On a GPU
the weights are initialised there (about half a minute in all); on a CPU it takes minutes and about
20 GB of memory. PREDICTION ("epsilon" or "v") goes into the file's metadata as
modelspec.prediction_type, as a v-prediction fine-tune's file may say it. Writes {"params", "tensors",
"seconds", "device"} or {"error", "message"} to OUT_JSON.
"""

import json
import os
import sys
import time
import traceback


def _text_config(hidden, mlp, layers, heads, act):
    """The CLIPTextConfig load_models_from_sdxl_checkpoint uses for each encoder."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        hidden_act=act,
        layer_norm_eps=1e-05,
        dropout=0.0,
        attention_dropout=0.0,
        initializer_range=0.02,
        initializer_factor=1.0,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        model_type="clip_text_model",
        projection_dim=hidden,
    )


def build(folder, model_path, seed, prediction=None):
    sys.path.insert(0, folder)
    import torch
    from diffusers import AutoencoderKL
    from library import model_util, sdxl_model_util, sdxl_original_unet
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    with torch.device(device):
        unet = sdxl_original_unet.SdxlUNet2DConditionModel()
        text_encoder1 = CLIPTextModel(_text_config(768, 3072, 12, 12, "quick_gelu"))
        text_encoder2 = CLIPTextModelWithProjection(_text_config(1280, 5120, 32, 20, "gelu"))
        vae = AutoencoderKL(**model_util.create_vae_diffusers_config())
        logit_scale = torch.tensor(4.6052)  # ln(100), what the released bigG carries
    params = sum(p.numel() for m in (unet, text_encoder1, text_encoder2, vae) for p in m.parameters())
    metadata = {"artlab_kohya": "random-init SDXL-architecture checkpoint for tests", "seed": str(seed)}
    if prediction:
        metadata["modelspec.prediction_type"] = prediction
    tensors = sdxl_model_util.save_stable_diffusion_checkpoint(
        model_path,
        text_encoder1,
        text_encoder2,
        unet,
        0,
        0,
        None,
        vae,
        logit_scale,
        metadata,
        save_dtype=torch.float16,
    )
    return {"params": params, "tensors": tensors, "seconds": round(time.time() - started, 1), "device": device}


def main():
    folder, model_path, seed = sys.argv[1:4]
    prediction, out = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, sys.argv[4])
    os.chdir(folder)
    try:
        result = build(folder, model_path, int(seed), prediction)
    except ImportError as exc:
        result = {"error": "import", "module": exc.name, "message": str(exc)}
    except MemoryError:
        result = {"error": "MemoryError", "message": "out of memory (building the model on a CPU needs about 20 GB)"}
    except BaseException as exc:  # noqa: BLE001 - every failure goes back as data
        result = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()[-4000:]}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    sys.exit(0 if "error" not in result else 3)


if __name__ == "__main__":
    main()
