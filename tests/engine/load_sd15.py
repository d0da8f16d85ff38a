"""Run with the trainer's Python: load an SD1.x checkpoint with sd-scripts' own single-file loader.

    python load_sd15.py SD_SCRIPTS_DIR MODEL_PATH

The loader calls load_state_dict strictly for the U-Net, the VAE and the text encoder, so returning
at all means every key matched. Prints JSON with the classes and parameter counts.
"""

import json
import sys


def main():
    folder, model = sys.argv[1:3]
    sys.path.insert(0, folder)
    from library import model_util

    text_encoder, vae, unet = model_util.load_models_from_stable_diffusion_checkpoint(False, model)
    counts = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in (("text_encoder", text_encoder), ("vae", vae), ("unet", unet))
    }
    print(json.dumps({"classes": [type(m).__name__ for m in (text_encoder, vae, unet)], "params": counts}))


main()
