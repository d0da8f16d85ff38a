"""Fill a dataset folder with placeholder images and captions, to try artlab-kohya without your own.

    python scripts/demo_dataset.py demo/img/10_demo --count 30 --size 512

The pictures are coloured shapes: enough to check, plan and train a smoke-test LoRA, not a useful one.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--trigger", default=None, help="trigger word (default: the folder name after N_)")
    args = parser.parse_args()
    trigger = args.trigger or args.folder.name.partition("_")[2] or "demo"
    args.folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    shapes = ["circle", "square", "triangle"]
    colours = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (220, 200, 40)}
    for i in range(args.count):
        w, h = rng.choice([(args.size, args.size), (args.size, args.size * 3 // 2), (args.size * 3 // 2, args.size)])
        w, h = w // 64 * 64, h // 64 * 64
        shape, (colour, rgb) = rng.choice(shapes), rng.choice(list(colours.items()))
        image = Image.new("RGB", (w, h), (235, 235, 225))
        draw = ImageDraw.Draw(image)
        shift = i * 3  # every picture different, so none is a duplicate of another
        box = (w // 4 + shift, h // 4, 3 * w // 4 + shift, 3 * h // 4)
        if shape == "circle":
            draw.ellipse(box, fill=rgb)
        elif shape == "square":
            draw.rectangle(box, fill=rgb)
        else:
            draw.polygon(
                [(w // 2 + shift, h // 4), (w // 4 + shift, 3 * h // 4), (3 * w // 4 + shift, 3 * h // 4)], fill=rgb
            )
        name = args.folder / f"{trigger}_{i:03d}"
        image.save(name.with_suffix(".png"))
        name.with_suffix(".txt").write_text(f"{trigger}, a {colour} {shape}, flat colours\n", encoding="utf-8")
    print(f"wrote {args.count} images with captions to {args.folder}")


if __name__ == "__main__":
    main()
