"""Build random-initialised SD3 files with sd-scripts' own model code, and a toy T5 tokenizer.

Run by the trainer's Python, not ours: it imports sd-scripts, torch, transformers and tokenizers from the
trainer environment, and its neighbour build_flux_random.py (for T5-XXL and the tokenizer), nothing else.

    python build_sd3_random.py SD_SCRIPTS_DIR OUT_FOLDER SEED VARIANT TOKENIZER_DIR OUT_JSON

VARIANT is sd3-medium, sd3.5-medium or sd3.5-large. Writes OUT_FOLDER/sd3_random.safetensors (the MMDiT
of library/sd3_models.create_sd3_mmdit with the parameters sd3_utils.analyze_state_dict_state reads for
that variant, under "model.diffusion_model.", and sd3_models.SDVAE under "first_stage_model.", as
Stability AI's single files hold them), clip_l_random.safetensors and clip_g_random.safetensors (CLIP
text models with projection, as sd3_utils.load_clip_l/load_clip_g build them) and
t5xxl_random.safetensors, all in bf16; TOKENIZER_DIR/google_t5-v1_1-xxl gets the toy T5 tokenizer.
Writes {"params", "files", "seconds"} or {"error", "message"} to OUT_JSON.
"""

import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import build_flux_random as shared  # noqa: E402 - T5-XXL, the toy tokenizer and saving, shared with FLUX.1

# (depth, num_patches, pos_embed_max_size, qk_norm, x_block_self_attn_layers, width, model_type)
VARIANTS = {
    "sd3-medium": (24, 36864, 192, None, [], 1536, "medium"),
    "sd3.5-medium": (24, 147456, 384, "rms", list(range(13)), 1536, "5-medium"),
    "sd3.5-large": (38, 36864, 192, "rms", [], 2432, "5-large"),
}


def build(folder, out, seed, variant, tokenizer_dir):
    sys.path.insert(0, folder)
    import torch
    from library import sd3_models
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    started = time.time()
    os.makedirs(out, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    depth, patches, size, qk, attn2, width, kind = VARIANTS[variant]
    params = sd3_models.SD3Params(2, depth, patches, size, 2048, qk, attn2, 4096, width, kind)
    clip_g = dict(shared.CLIP_L_CONFIG, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                  num_attention_heads=20, hidden_act="gelu", projection_dim=1280)  # fmt: skip
    files, total = {}, 0

    def write(name, state):
        nonlocal total
        from safetensors.torch import save_file

        save_file(state, os.path.join(out, name))
        count = sum(v.numel() for v in state.values())
        files[name] = {"params": count, "bytes": os.path.getsize(os.path.join(out, name))}
        total += count

    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        mmdit = sd3_models.create_sd3_mmdit(params)
        torch.set_default_dtype(torch.float32)
        vae = sd3_models.SDVAE(torch.float32, device)
    state = {f"model.diffusion_model.{k}": v.detach().to("cpu", torch.bfloat16, copy=True).contiguous()
             for k, v in mmdit.state_dict().items()}  # fmt: skip
    state |= {f"first_stage_model.{k}": v.detach().to("cpu", torch.bfloat16, copy=True).contiguous()
              for k, v in vae.state_dict().items()}  # fmt: skip
    del mmdit, vae
    write("sd3_random.safetensors", state)
    del state
    builders = (
        ("clip_l_random.safetensors", lambda: CLIPTextModelWithProjection(CLIPTextConfig(**shared.CLIP_L_CONFIG))),
        ("clip_g_random.safetensors", lambda: CLIPTextModelWithProjection(CLIPTextConfig(**clip_g))),
        ("t5xxl_random.safetensors", lambda: T5EncoderModel(T5Config(**shared.T5_CONFIG))),
    )
    for name, make in builders:
        torch.set_default_dtype(torch.bfloat16 if name.startswith("t5xxl") else torch.float32)
        with torch.device(device):
            model = make()
        torch.set_default_dtype(torch.float32)
        state = {k: v.detach().to("cpu", torch.bfloat16, copy=True) for k, v in model.state_dict().items()}
        write(name, state)
        del state
        del model
    if device == "cuda":
        torch.cuda.empty_cache()
    shared.t5_tokenizer(os.path.join(tokenizer_dir, "google_t5-v1_1-xxl"))
    return {"params": total, "files": files, "seconds": round(time.time() - started, 1), "device": device}


def main():
    folder, out, seed, variant, tokenizer_dir, result_path = sys.argv[1:7]
    os.chdir(folder)
    try:
        result = build(folder, out, int(seed), variant, tokenizer_dir)
    except ImportError as exc:
        result = {"error": "import", "module": exc.name, "message": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - every failure goes back as data
        result = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()[-4000:]}
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    sys.exit(0 if "error" not in result else 3)


if __name__ == "__main__":
    main()
