"""FLUX.1 LoRA training through `artlab-kohya run` on a GPU: steady images/s and peak GPU memory.

    python benchmarks/bench_flux.py --sd-scripts DIR --tokenizers DIR --work /tmp/flux --out OUT \\
        --cases flux_gc flux --deadline 560

The FLUX.1 dev files, full size (trainer/inside/build_flux_random.py: the 11.9e9-parameter transformer,
its autoencoder, CLIP-L and T5-XXL), at 512 px, networks.lora_flux, sd-scripts' recommended flow settings
(the spec's flux: defaults); the rest as bench_dit.py says:
- flux_gc: with gradient checkpointing;
- flux: without.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dit  # noqa: E402 - what the FLUX.1 and SD3 benchmarks share

if __name__ == "__main__":
    bench_dit.main(bench_dit.FLUX, __doc__)
