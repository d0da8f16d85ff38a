"""Build a random-initialised SDXL-architecture checkpoint with sd-scripts' own model code.

Run by the trainer's Python, not ours: it imports sd-scripts, torch, diffusers and transformers from the
trainer environment, and its neighbour random_models.py (the CLIP configurations, main()), nothing else.

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

import time

import random_models as shared


def build(folder, model_path, seed, prediction=None):
    seed = int(seed)
    import torch
    from diffusers import AutoencoderKL
    from library import model_util, sdxl_model_util, sdxl_original_unet
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    with torch.device(device):
        unet = sdxl_original_unet.SdxlUNet2DConditionModel()
        text_encoder1 = CLIPTextModel(CLIPTextConfig(**shared.CLIP_L_CONFIG))
        text_encoder2 = CLIPTextModelWithProjection(CLIPTextConfig(**shared.CLIP_G_CONFIG))
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


if __name__ == "__main__":
    shared.main(build, "building the model on a CPU needs about 20 GB")
