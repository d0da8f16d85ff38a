"""Run with the trainer's Python: a small real LoRA made by sd-scripts' own networks/lora.py on a checkpoint.

    python make_lora.py SD_SCRIPTS_DIR MODEL OUT.safetensors DIM [ALPHA]

The network is created on the model's text encoder and U-Net (create_network, apply_to) and saved with
save_weights, as train_network.py does; its up weights get small random values (training would start them
at zero), so that a merge changes the model and a resize has singular values to keep. No training step.
"""

import os
import sys


def main():
    folder, model, out, dim = sys.argv[1:5]
    alpha = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    sys.path.insert(0, folder)
    sys.path.insert(0, os.path.join(folder, "networks"))
    os.chdir(folder)
    import lora
    import torch
    from library import model_util

    torch.manual_seed(0)
    text_encoder, vae, unet = model_util.load_models_from_stable_diffusion_checkpoint(False, model)
    network = lora.create_network(1.0, int(dim), alpha, vae, text_encoder, unet)
    network.apply_to(text_encoder, unet, True, True)
    with torch.no_grad():
        for name, param in network.named_parameters():
            if "lora_up" in name:
                param.normal_(0.0, 0.01)
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha),
        "ss_base_model_version": "sd_v1",
        "ss_sd_model_name": os.path.basename(model),
    }
    network.save_weights(out, torch.float32, metadata)
    print(f"saved {out}")


main()
