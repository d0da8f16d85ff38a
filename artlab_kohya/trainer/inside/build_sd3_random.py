"""Build random-initialised SD3 files with sd-scripts' own model code, and a toy T5 tokenizer.

Run by the trainer's Python, not ours: it imports sd-scripts, torch, transformers and tokenizers from the
trainer environment, and its neighbour random_models.py (text encoders, tokenizer, saving), nothing else.

    python build_sd3_random.py SD_SCRIPTS_DIR OUT_FOLDER SEED VARIANT TOKENIZER_DIR OUT_JSON

VARIANT is sd3-medium, sd3.5-medium or sd3.5-large, or tiny-sd3-medium / tiny-sd3.5-large: the same
kind of MMDiT with 2 joint blocks of width 128 and room for 512 px (a CPU can train it in minutes; the
text encoders stay full size, as sd-scripts builds them with fixed configurations). Writes
OUT_FOLDER/sd3_random.safetensors (the MMDiT of library/sd3_models.create_sd3_mmdit with the parameters
sd3_utils.analyze_state_dict_state reads back for that variant, under "model.diffusion_model.", and
sd3_models.SDVAE under "first_stage_model.", as Stability AI's single files hold them),
clip_l_random.safetensors and clip_g_random.safetensors (CLIP text models with projection, as
sd3_utils.load_clip_l/load_clip_g build them) and t5xxl_random.safetensors, all in bf16;
TOKENIZER_DIR/google_t5-v1_1-xxl gets the toy T5 tokenizer. Writes {"params", "files", "seconds",
"device"} or {"error", "message"} to OUT_JSON.
"""

import os
import time

import random_models as shared

# (depth, num_patches, pos_embed_max_size, qk_norm, x_block_self_attn_layers, model_type); the width is
# 64 x depth, as analyze_state_dict_state reads the depth back from it
VARIANTS = {
    "sd3-medium": (24, 36864, 192, None, [], "medium"),
    "sd3.5-medium": (24, 147456, 384, "rms", list(range(13)), "5-medium"),
    "sd3.5-large": (38, 36864, 192, "rms", [], "5-large"),
    "tiny-sd3-medium": (2, 1024, 32, None, [], "medium"),
    "tiny-sd3.5-large": (2, 1024, 32, "rms", [], "5-large"),
}


def _initialise_empty(mmdit, sd3_models):
    """What create_sd3_mmdit leaves as torch.empty (its initialize_weights is not called): the q/k RMSNorm
    scales and the sin-cos position table. Fresh GPU memory is mostly zeros; on a CPU it holds whatever
    was there, NaN included, and training stops at the first step."""
    import torch

    with torch.no_grad():
        for module in mmdit.modules():
            if isinstance(module, sd3_models.RMSNorm) and module.weight is not None:
                module.weight.fill_(1.0)
        if mmdit.pos_embed is not None:
            table = sd3_models.get_2d_sincos_pos_embed(
                mmdit.pos_embed.shape[-1], round(mmdit.pos_embed.shape[-2] ** 0.5), mmdit.pos_embed_scaling_factor
            )
            mmdit.pos_embed.copy_(torch.from_numpy(table).unsqueeze(0))


def build(folder, out, seed, variant, tokenizer_dir):
    import torch
    from library import sd3_models

    started = time.time()
    os.makedirs(out, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(int(seed))
    depth, patches, size, qk, attn2, kind = VARIANTS[variant]
    params = sd3_models.SD3Params(2, depth, patches, size, 2048, qk, attn2, 4096, 64 * depth, kind)
    files = {}
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        mmdit = sd3_models.create_sd3_mmdit(params)
        _initialise_empty(mmdit, sd3_models)
        torch.set_default_dtype(torch.float32)
        vae = sd3_models.SDVAE(torch.float32, device)
    state = shared.bf16_state(mmdit, "model.diffusion_model.") | shared.bf16_state(vae, "first_stage_model.")
    del mmdit, vae
    total = shared.write(state, os.path.join(out, "sd3_random.safetensors"), files)
    del state
    names = {"clip_l_proj": "clip_l_random.safetensors", "clip_g": "clip_g_random.safetensors",
             "t5xxl": "t5xxl_random.safetensors"}  # fmt: skip
    total += shared.build_text_encoders(out, device, names, files)
    shared.t5_tokenizer(os.path.join(tokenizer_dir, "google_t5-v1_1-xxl"))
    return {"params": total, "files": files, "seconds": round(time.time() - started, 1), "device": device}


if __name__ == "__main__":
    shared.main(build)
