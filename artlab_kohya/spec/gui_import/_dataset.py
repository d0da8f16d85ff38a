"""Resolution, buckets, captions and the subsets: one per N_name folder of train_data_dir and reg_data_dir,
with the GUI's per-dataset caption and augmentation settings on each."""

from __future__ import annotations

from typing import Any

from ..gui import BY_NAME, resolution
from ._conversion import Conversion, placeholder, windows


def dataset(c: Conversion) -> None:
    c.put("dataset.resolution", resolution(c.get("max_resolution")), "max_resolution")
    c.put("dataset.batch_size", c.get("train_batch_size"), "train_batch_size")
    buckets = bool(c.get("enable_bucket"))
    c.put("dataset.buckets.enabled", buckets, "enable_bucket")
    fields = {"min_bucket_reso": "min_resolution", "max_bucket_reso": "max_resolution", "bucket_reso_steps": "step"}
    for gui, path in fields.items():
        if buckets:
            c.put(f"dataset.buckets.{path}", c.get(gui), gui)
        else:
            c.skip(gui, "ignored by sd-scripts with bucketing off (enable_bucket false)")
    if buckets:
        c.put("dataset.buckets.no_upscale", bool(c.get("bucket_no_upscale")), "bucket_no_upscale")
    else:
        c.skip("bucket_no_upscale", "ignored by sd-scripts with bucketing off (enable_bucket false)")
    ext = c.get("caption_extension")
    if ext:
        c.put("dataset.caption_extension", ext, "caption_extension")
    else:
        c.put(
            "dataset.caption_extension",
            ".caption",
            "caption_extension",
            note="empty: the GUI passes none, and sd-scripts reads .caption files",
        )
    if c.get("dataset_config"):
        c.skip("dataset_config", BY_NAME["dataset_config"].why)
        c.warn("dataset_config: the GUI trained from that dataset config, not from train_data_dir; check the subsets")
    subsets: list[dict[str, Any]] = []
    train = c.dataset or str(c.get("train_data_dir") or "")
    reg = str(c.get("reg_data_dir") or "")
    gui_train = "--dataset" if c.dataset else "train_data_dir"
    if not train:
        subsets.append({"path": "img"})
        c.warn(
            "dataset.subsets: the config names no train_data_dir: edit the subset's path (an N_name folder) "
            "or pass --dataset"
        )
        notes = [(0, "placeholder: the config names no image folder")]
    else:
        notes = _subsets(c, train, False, subsets, gui_train)
    if reg:
        notes += _subsets(c, reg, True, subsets, "reg_data_dir")
    per_subset = {
        "shuffle_caption": bool(c.get("shuffle_caption")),
        "keep_tokens": c.get("keep_tokens"),
        "flip_aug": bool(c.get("flip_aug")),
        "color_aug": bool(c.get("color_aug")),
        "random_crop": bool(c.get("random_crop")),
        "caption_dropout_rate": float(c.get("caption_dropout_rate") or 0),
        "caption_dropout_every_n_epochs": c.get("caption_dropout_every_n_epochs") or 0,
    }
    for subset in subsets:
        subset.update({k: v for k, v in per_subset.items() if v})
    c.out.data.setdefault("dataset", {})["subsets"] = subsets
    for i, text in notes:
        c.out.notes.setdefault(("dataset", "subsets", i, "path"), []).append(text)
    set_here = [k for k, v in per_subset.items() if v]
    if set_here:
        c.out.notes.setdefault(("dataset", "subsets"), []).append(
            f"{', '.join(set_here)}: the GUI's settings, on every subset"
        )


def _subsets(c: Conversion, root: str, reg: bool, subsets: list[dict[str, Any]], gui: str) -> list[tuple[int, str]]:
    notes = []
    found = c.folders(root)
    kind = "regularization " if reg else ""
    if found is None and placeholder(root):
        c.warn(f"{gui}: '{root}' is the preset's placeholder, not a folder: pass --dataset DIR (its N_name folders)")
        found = []
    elif found is None:
        c.warn(
            f"{gui}: '{root}' does not exist here{windows(root)}; its N_name folders could not be listed: "
            "write one subset per folder once it is here, or pass --dataset"
        )
        found = []
    if not found:
        if c.exists(root):
            c.warn(f"{gui}: '{root}' has no N_name folders (kohya's repeats_name layout)")
        subsets.append({"path": root, **({"regularization": True} if reg else {})})
        notes.append((len(subsets) - 1, f"{gui}: {kind}images; list its N_name folders as subsets"))
        return notes
    for name, _repeats in found:
        path = root if name == "." else root.rstrip("/\\") + "/" + name
        subsets.append({"path": path, "repeats": "folder", **({"regularization": True} if reg else {})})
        notes.append((len(subsets) - 1, f"{gui}: {kind}folder {name}, repeats from its name"))
    return notes
