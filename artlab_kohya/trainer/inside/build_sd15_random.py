"""Build a random-initialised SD1.5-architecture checkpoint with sd-scripts' own model code.

Run by the trainer's Python, not ours: it imports sd-scripts, torch, diffusers and transformers from the
trainer environment, and its neighbour random_models.py (CLIP-L's configuration, main()), nothing else.

    python build_sd15_random.py SD_SCRIPTS_DIR MODEL_PATH SEED OUT_JSON

sd-scripts' SD1 single-file loader hard-codes the full architecture, so the checkpoint is full size
(about 1.07e9 parameters, 2.1 GB in fp16); it cannot be made smaller and stay loadable. It is written
with sd-scripts' own save_stable_diffusion_checkpoint, so the key layout is exactly what its loader
reads back. Takes about 35 s and 9 GB of memory on a CPU. Writes {"params", "tensors", "seconds"} or
{"error", "message"} to OUT_JSON.
"""

import time

import random_models as shared


def build(folder, model_path, seed):
    seed = int(seed)
    import torch
    from diffusers import AutoencoderKL
    from library import model_util
    from library.original_unet import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    started = time.time()
    torch.manual_seed(seed)
    unet_config = model_util.create_unet_diffusers_config(False)
    unet = UNet2DConditionModel(
        unet_config["sample_size"],
        unet_config["attention_head_dim"],
        unet_config["cross_attention_dim"],
        False,
        False,
    )
    vae = AutoencoderKL(**model_util.create_vae_diffusers_config())
    # the text-encoder configuration load_models_from_stable_diffusion_checkpoint uses for SD1
    text_encoder = CLIPTextModel(CLIPTextConfig(**shared.CLIP_L_CONFIG))
    params = sum(p.numel() for m in (unet, vae, text_encoder) for p in m.parameters())
    metadata = {"artlab_kohya": "random-init SD1.5-architecture checkpoint for doctor --smoke", "seed": str(seed)}
    tensors = model_util.save_stable_diffusion_checkpoint(
        False, model_path, text_encoder, unet, None, 0, 0, metadata, save_dtype=torch.float16, vae=vae
    )
    return {"params": params, "tensors": tensors, "seconds": round(time.time() - started, 1)}


if __name__ == "__main__":
    shared.main(build, "building the model needs about 9 GB")
