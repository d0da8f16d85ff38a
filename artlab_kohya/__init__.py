"""artlab-kohya: a reviewed YAML spec in, a reproducible kohya sd-scripts LoRA run out."""

__version__ = "0.1.0"
