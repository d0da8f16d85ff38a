"""The numbers of the Kohya LoRA training guide that artlab-kohya checks against, declared once."""

from __future__ import annotations

MIN_IMAGES_ERROR = 10  # fewer than 10 images do not train a usable LoRA
MIN_IMAGES = 15  # 15 or more is better
MIN_STEPS = 1500  # total steps = images x repeats x epochs / batch size; aim above ~1500
LOSS_WINDOW = (0.08, 0.10)  # a good LoRA's average loss; pick the epoch inside it
