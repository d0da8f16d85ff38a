"""SD3 LoRA training through `artlab-kohya run` on a GPU: steady images/s and peak GPU memory.

    python benchmarks/bench_sd3.py --sd-scripts DIR --tokenizers DIR --work /tmp/sd3 --out OUT \\
        --variant sd3.5-large --cases sd3_gc sd3 --deadline 540

The SD3 files of the variant, full size (trainer/inside/build_sd3_random.py: the MMDiT with its VAE,
CLIP-L, CLIP-G and T5-XXL), at 1024 px, networks.lora_sd3, the spec's sd3: defaults; the rest as
bench_dit.py says:
- sd3_gc: with gradient checkpointing;
- sd3: without.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dit  # noqa: E402 - what the FLUX.1 and SD3 benchmarks share

if __name__ == "__main__":
    bench_dit.main(bench_dit.SD3, __doc__)
