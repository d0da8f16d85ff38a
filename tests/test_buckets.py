"""buckets.py: expected values were produced by the pinned sd-scripts (BucketManager, make_buckets,
DreamBoothDataset, accelerate's sharded DataLoader); the engine test at the bottom recomputes them there.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from artlab_kohya.dataset.buckets import (
    BucketConfig,
    DatasetCount,
    SubsetSizes,
    assign_bucket,
    batches_per_process,
    bucket_resolutions,
    dataset_batches,
    epochs_for_steps,
    steps_per_epoch,
    total_steps,
)
from artlab_kohya.dataset.images import list_images, read_sizes

# model_util.make_bucket_resolutions((512, 512), 256, 1024, 64)
RESOS_512 = [(256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640), (448, 576),
             (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256),
             (1024, 256)]  # fmt: skip

# BucketManager.select_bucket at resolution 512, steps 64, min 256, max 1024: size -> (upscale, no_upscale)
SELECT_512 = {
    (512, 512): ((512, 512), (512, 512)),
    (640, 480): ((576, 448), (512, 384)),
    (480, 640): ((448, 576), (384, 512)),
    (1024, 768): ((576, 448), (512, 384)),
    (300, 1200): ((256, 1024), (256, 1024)),
    (1200, 300): ((1024, 256), (1024, 256)),
    (2000, 1000): ((704, 320), (640, 320)),
    (513, 511): ((512, 512), (512, 448)),
    (576, 448): ((576, 448), (576, 448)),  # already a bucket's size
    (100, 100): ((512, 512), (64, 64)),  # upscaled, or kept small
    (699, 699): ((512, 512), (512, 512)),
    (600, 400): ((640, 384), (576, 384)),
    (4032, 3024): ((576, 448), (512, 384)),
}


def test_bucket_resolutions() -> None:
    assert bucket_resolutions(BucketConfig((512, 512), enable=True)) == RESOS_512
    wide = bucket_resolutions(BucketConfig((768, 512), True, 128, 1536, 32))
    assert len(wide) == 67
    assert wide[:6] == [(128, 1536), (160, 1536), (192, 1536), (224, 1536), (256, 1376), (256, 1408)]
    assert bucket_resolutions(BucketConfig((512, 768))) == [(512, 768)]
    assert bucket_resolutions(BucketConfig((512, 512), enable=True, no_upscale=True)) == []


def test_min_max_are_rounded_to_steps() -> None:
    cfg = BucketConfig((512, 512), True, min_reso=200, max_reso=1000)
    assert (cfg.effective_min_reso, cfg.effective_max_reso) == (192, 1024)
    assert bucket_resolutions(cfg)[0] == (192, 1024)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_reso": 640}, "min_reso: must be at most the shorter side"),
        ({"max_reso": 448}, "max_reso: must be at least the longer side"),
        ({"reso_steps": 0}, "reso_steps: must be positive"),
    ],
)
def test_bucket_config_rejects_what_sd_scripts_asserts(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BucketConfig((512, 512), enable=True, **kwargs)
    BucketConfig((512, 512), enable=False, **kwargs)  # ignored without bucketing, as in sd-scripts


@pytest.mark.parametrize("size", list(SELECT_512))
def test_assign_bucket(size: tuple[int, int]) -> None:
    upscale, no_upscale = SELECT_512[size]
    assert assign_bucket(BucketConfig((512, 512), True), size) == upscale
    assert assign_bucket(BucketConfig((512, 512), True, no_upscale=True), size) == no_upscale
    assert assign_bucket(BucketConfig((512, 512)), size) == (512, 512)


def test_vp8x_webp_lands_in_a_smaller_no_upscale_bucket() -> None:
    # a 512x512 WebP with alpha is sized 511x511 by sd-scripts (images.read_size), so without upscaling
    # it is cropped to 448x448
    noup = BucketConfig((512, 512), True, no_upscale=True)
    assert assign_bucket(noup, (511, 511)) == (448, 448)
    assert assign_bucket(noup, (512, 512)) == (512, 512)


def test_assign_bucket_degenerate_sizes() -> None:
    noup = BucketConfig((512, 512), True, no_upscale=True)
    with pytest.raises(ValueError, match=r"would make a \(0, 4992\) bucket"):
        assign_bucket(noup, (1, 5000))
    with pytest.raises(ValueError, match="must be positive"):
        assign_bucket(BucketConfig((512, 512), True), (0, 0))


def test_dataset_batches_counts_repeats_per_bucket() -> None:
    cfg = BucketConfig((512, 512), True)
    train = SubsetSizes([(640, 480), (1024, 768), (480, 640), (512, 512)], num_repeats=3)
    count = dataset_batches(cfg, [train], batch_size=4)
    assert count == DatasetCount({(448, 576): 3, (512, 512): 3, (576, 448): 6}, 12, 0, 0, 4)


def test_reg_images_fill_up_to_train_count_round_robin() -> None:
    cfg = BucketConfig((512, 512))
    train = SubsetSizes([(512, 512)] * 12, num_repeats=4)  # 48
    reg = SubsetSizes([(512, 768), (768, 512)], is_reg=True)  # 2, repeated round-robin to 48
    count = dataset_batches(cfg, [train, reg], batch_size=2)
    assert (count.num_train_images, count.num_reg_images, count.num_reg_used) == (48, 2, 48)
    assert count.buckets == {(512, 512): 96}
    assert count.batches == 48


def test_reg_images_beyond_train_count_are_dropped() -> None:
    cfg = BucketConfig((512, 512), True)
    train = SubsetSizes([(800, 600)] * 5)
    reg = SubsetSizes([(300, 1200), (1200, 300)], num_repeats=5, is_reg=True)
    count = dataset_batches(cfg, [train, reg], batch_size=1)
    # the first reg image already brings 5 repeats, the train total: the second is never registered
    assert count.buckets == {(256, 1024): 5, (576, 448): 5}
    assert (count.num_reg_images, count.num_reg_used, count.batches) == (10, 5, 10)


def test_reg_without_train_images_is_unused() -> None:
    reg = SubsetSizes([(512, 512)] * 3, is_reg=True)
    assert dataset_batches(BucketConfig((512, 512)), [reg], 1) == DatasetCount({}, 0, 3, 0, 0)


def test_skipped_subsets() -> None:
    cfg = BucketConfig((512, 512))
    a = SubsetSizes([(512, 512)] * 2, image_dir="/d/a")
    count = dataset_batches(
        cfg,
        [
            a,
            SubsetSizes([(512, 512)] * 5, num_repeats=2, image_dir="/d/a"),  # same image_dir: dropped
            SubsetSizes([(512, 512)] * 7, num_repeats=0),  # num_repeats < 1: dropped
            SubsetSizes([], image_dir="/d/b"),  # no images: dropped
            SubsetSizes([(512, 512)], image_dir="/d/b"),  # so this one is kept
        ],
        batch_size=1,
    )
    assert (count.num_train_images, count.batches) == (3, 3)


def test_transcript_lora_run() -> None:
    # transcripts/lora.stdout: 6 images x 10 repeats at 64 px, no buckets, batch 1, max_train_epochs 2
    count = dataset_batches(BucketConfig((64, 64)), [SubsetSizes([(64, 64)] * 6, num_repeats=10)], 1)
    assert (count.num_train_images, count.num_reg_images, count.batches) == (60, 0, 60)
    assert batches_per_process(count.batches) == 60  # "num batches per epoch"
    assert total_steps(count.batches, epochs=2) == 120  # "total optimization steps"


def test_steps_on_two_gpus() -> None:
    # README (H200 x2, batch 8 per GPU, max_train_epochs 3): 25 batches on one GPU, 13 per process on two
    assert batches_per_process(25, 2) == 13
    assert total_steps(25, epochs=3) == 75
    assert total_steps([20, 5], epochs=3, num_processes=2) == 39
    assert epochs_for_steps(25, 75, num_processes=2) == 6  # the one-GPU step count ran 6 epochs


def test_gradient_accumulation() -> None:
    assert steps_per_epoch(7, grad_accum=2) == 4  # the last, partial accumulation still steps
    assert steps_per_epoch(7, grad_accum=2, num_processes=2) == 2
    assert total_steps(7, epochs=3, grad_accum=4) == 6
    assert epochs_for_steps(7, 1600, grad_accum=2) == 400
    assert epochs_for_steps(7, 5, grad_accum=2) == 2


def test_step_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="No data found"):
        steps_per_epoch(0)
    with pytest.raises(ValueError, match="grad_accum"):
        steps_per_epoch(3, grad_accum=0)
    with pytest.raises(ValueError, match="num_processes"):
        batches_per_process(3, 0)
    with pytest.raises(ValueError, match="batch_size"):
        dataset_batches(BucketConfig((64, 64)), [], 0)


# --- against the real sd-scripts -----------------------------------------------------------------------

# Builds sd-scripts' own datasets (config_util, as train_network.py does, with its latent-caching strategy
# set) from a dataset config, without any model or tokenizer; then asks accelerate how it shards and
# accumulates. Writes what it saw as JSON.
ENGINE_PROBE = textwrap.dedent(
    """
    import argparse, json, os, sys
    sys.path.insert(0, os.environ["ARTLAB_KOHYA_DIR"])
    import torch
    from accelerate import Accelerator
    from accelerate.data_loader import prepare_data_loader
    from library import config_util, strategy_base, strategy_sd, train_util

    spec = json.load(open(sys.argv[1]))
    parser = argparse.ArgumentParser()
    train_util.add_dataset_arguments(parser, True, True, True)
    train_util.add_training_arguments(parser, True)
    args = parser.parse_args([])
    strategy_base.LatentsCachingStrategy.set_strategy(strategy_sd.SdSdxlLatentsCachingStrategy(True, False, 1, False))

    cases = {}
    for name, user_config in spec["cases"].items():
        try:
            generator = config_util.BlueprintGenerator(config_util.ConfigSanitizer(True, True, False, True))
            blueprint = generator.generate(user_config, args)
            group, _ = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
        except Exception as e:
            cases[name] = {"error": type(e).__name__ + ": " + str(e)}
            continue
        datasets = []
        for ds in group.datasets:
            manager = ds.bucket_manager
            datasets.append({
                "len": len(ds),
                "num_train_images": ds.num_train_images,
                "num_reg_images": ds.num_reg_images,
                "buckets": [[*reso, len(b)] for reso, b in zip(manager.resos, manager.buckets) if b],
                "images": {k: [*i.image_size, *i.bucket_reso, i.num_repeats, i.is_reg]
                           for k, i in ds.image_data.items()},
            })
        cases[name] = {"len": len(group), "datasets": datasets}

    shards = {}
    for n, p in spec["shards"]:
        loader = torch.utils.data.DataLoader(list(range(n)), batch_size=1, shuffle=True)
        shards[f"{n},{p}"] = [len(prepare_data_loader(loader, num_processes=p, process_index=i)) for i in range(p)]

    accum = {}
    for n, g in spec["accum"]:
        accelerator = Accelerator(gradient_accumulation_steps=g, cpu=True)
        model = torch.nn.Linear(1, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        loader = torch.utils.data.DataLoader(list(range(n)), batch_size=1, shuffle=True)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        per_epoch = []
        for epoch in range(2):  # train_network.py's loop: a step is counted when gradients sync
            steps = 0
            for batch in loader:
                with accelerator.accumulate(model):
                    accelerator.backward(model(batch.float().view(-1, 1)).sum())
                    optimizer.step()
                    optimizer.zero_grad()
                if accelerator.sync_gradients:
                    steps += 1
            per_epoch.append(steps)
        accum[f"{n},{g}"] = per_epoch
        accelerator.free_memory()

    json.dump({"cases": cases, "shards": shards, "accum": accum}, open(sys.argv[2], "w"))
    """
)

# folder -> image sizes (width, height) and formats: odd ratios, exact bucket sizes, upscales, an
# EXIF-rotated JPEG and a VP8X WebP (which sd-scripts sizes one pixel short)
FOLDERS: dict[str, list[tuple[int, int, str]]] = {
    "train_a": [(512, 512, "png"), (640, 480, "jpg"), (480, 640, "jpg"), (1024, 768, "png"),
                (300, 1200, "png"), (1200, 300, "webp"), (2000, 1000, "png"), (513, 511, "bmp"),
                (576, 448, "png"), (100, 100, "png"), (700, 700, "webp_alpha"), (600, 400, "jpg_exif6")],
    "train_b": [(800, 600, "jpg"), (800, 600, "png"), (800, 600, "jpeg"), (333, 999, "png"),
                (1920, 1080, "jpg"), (512, 512, "webp_alpha")],
    "reg_small": [(512, 768, "png"), (768, 512, "png")],
    "reg_big": [(512, 512, "jpg"), (640, 640, "png"), (1000, 400, "png"), (400, 1000, "png"),
                (768, 768, "webp"), (900, 500, "jpg"), (256, 256, "png")],
    "odd": [(64, 2048, "png"), (2048, 64, "png"), (3000, 3001, "png"), (17, 1031, "png")],
    "thin": [(2000, 50, "png")],
    "empty": [],
}  # fmt: skip


def sub(folder: str, repeats: int = 1, is_reg: bool = False) -> dict[str, Any]:
    return {"image_dir": folder, "num_repeats": repeats, "is_reg": is_reg, "class_tokens": "sks"}


def ds(resolution: int | list[int], batch_size: int, subsets: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"resolution": resolution, "batch_size": batch_size, "subsets": subsets, **kw}


BUCKETS = {"enable_bucket": True}
CASES: dict[str, list[dict[str, Any]]] = {
    "bucket_bs1": [ds(512, 1, [sub("train_a", 3), sub("train_b"), sub("reg_small", 1, True)], **BUCKETS)],
    "bucket_bs3": [ds(512, 3, [sub("train_a", 3), sub("train_b"), sub("reg_small", 1, True)], **BUCKETS)],
    "no_upscale_bs4": [
        ds(512, 4, [sub("train_a", 2), sub("train_b"), sub("reg_big", 1, True)], bucket_no_upscale=True, **BUCKETS)
    ],
    "no_buckets_bs4": [ds(512, 4, [sub("train_a"), sub("train_b", 5), sub("reg_big", 3, True)])],
    "rect_steps32_bs3": [
        ds(
            [768, 512],
            3,
            [sub("train_a"), sub("train_b", 2), sub("odd")],
            bucket_reso_steps=32,
            min_bucket_reso=128,
            max_bucket_reso=1536,
            **BUCKETS,
        )
    ],  # fmt: skip
    "reg_overflow": [ds(512, 1, [sub("train_b"), sub("reg_big", 5, True)], **BUCKETS)],
    "reg_round_robin_bs2": [ds(512, 2, [sub("train_a", 4), sub("reg_small", 1, True)], **BUCKETS)],
    "two_reg_subsets_bs3": [
        ds(512, 3, [sub("reg_small", 2, True), sub("train_a", 2), sub("reg_big", 1, True)], **BUCKETS)
    ],
    "skips": [
        ds(512, 1, [sub("train_a"), sub("train_a", 2), sub("train_b", 0), sub("empty"), sub("reg_small", 1, True)])
    ],
    "min_max_adjusted": [ds(512, 1, [sub("train_a")], min_bucket_reso=200, max_bucket_reso=1000, **BUCKETS)],
    "two_datasets": [
        ds(512, 2, [sub("train_a")], **BUCKETS),
        ds(768, 1, [sub("train_b", 2), sub("odd")]),
    ],
    "only_reg": [ds(512, 1, [sub("reg_big", 2, True)], **BUCKETS)],
    "no_upscale_too_thin": [ds(512, 1, [sub("thin")], bucket_no_upscale=True, **BUCKETS)],
    "min_above_resolution": [ds(512, 1, [sub("train_a")], min_bucket_reso=640, **BUCKETS)],
}
SHARDS = [(1, 1), (5, 2), (25, 2), (13, 3), (7, 4), (8, 4)]
ACCUM = [(5, 1), (7, 2), (7, 3), (8, 4), (1, 4)]


def write_folders(root: Path) -> None:
    from PIL import Image

    for folder, sizes in FOLDERS.items():
        (root / folder).mkdir()
        for i, (w, h, kind) in enumerate(sizes):
            ext = kind.split("_")[0]
            path = root / folder / f"{i:02d}.{ext}"
            extra: dict[str, Any] = {}
            mode = "RGBA" if kind == "webp_alpha" else "RGB"
            if kind == "jpg_exif6":
                exif = Image.Exif()
                exif[0x0112] = 6
                extra["exif"] = exif.tobytes()
            Image.new(mode, (w, h), (200, 100, 50, 255)[: len(mode)]).save(path, **extra)


def ours(root: Path, datasets: list[dict[str, Any]]) -> tuple[list[DatasetCount], dict[str, tuple[int, ...]]]:
    """Our count for each dataset of a case, and (size, bucket) per image path."""
    counts: list[DatasetCount] = []
    images: dict[str, tuple[int, ...]] = {}
    for d in datasets:
        res = d["resolution"]
        cfg = BucketConfig(
            (res, res) if isinstance(res, int) else tuple(res),
            d.get("enable_bucket", False),
            d.get("min_bucket_reso", 256),
            d.get("max_bucket_reso", 1024),
            d.get("bucket_reso_steps", 64),
            d.get("bucket_no_upscale", False),
        )
        subsets = []
        for s in d["subsets"]:
            paths = list_images(root / s["image_dir"])
            sizes = [z for z in read_sizes(paths) if isinstance(z, tuple)]
            assert len(sizes) == len(paths)
            subsets.append(SubsetSizes(sizes, s["num_repeats"], s["is_reg"], str(root / s["image_dir"])))
            for p, z in zip(paths, sizes, strict=True):
                images[str(p)] = (*z, *assign_bucket(cfg, z))
        counts.append(dataset_batches(cfg, subsets, d["batch_size"]))
    return counts, images


@pytest.mark.engine
def test_buckets_match_sd_scripts(tmp_path: Path) -> None:
    kohya, python = os.environ.get("ARTLAB_KOHYA_DIR"), os.environ.get("ENGINE_PYTHON")
    if not kohya or not python:
        pytest.skip("needs the real sd-scripts: set ARTLAB_KOHYA_DIR and ENGINE_PYTHON (source env.sh)")
    write_folders(tmp_path)

    def absolute(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**d, "subsets": [{**s, "image_dir": str(tmp_path / s["image_dir"])} for s in d["subsets"]]}
                for d in datasets]  # fmt: skip

    spec = {"cases": {n: {"datasets": absolute(c)} for n, c in CASES.items()}, "shards": SHARDS, "accum": ACCUM}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "probe.py").write_text(ENGINE_PROBE)
    run = subprocess.run(
        [python, str(tmp_path / "probe.py"), str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())

    for name, datasets in CASES.items():
        engine = got["cases"][name]
        if "error" in engine:  # sd-scripts refused or crashed: so must we
            with pytest.raises(ValueError):
                ours(tmp_path, datasets)
            continue
        counts, images = ours(tmp_path, datasets)
        assert engine["len"] == sum(c.batches for c in counts), name
        for c, e in zip(counts, engine["datasets"], strict=True):
            assert {(w, h): n for w, h, n in e["buckets"]} == c.buckets, name
            assert (e["len"], e["num_train_images"], e["num_reg_images"]) == (
                c.batches,
                c.num_train_images,
                c.num_reg_images,
            ), name
            assert sum(v[4] for v in e["images"].values() if v[5]) == c.num_reg_used, name
            for path, (w, h, bw, bh, _repeats, _reg) in e["images"].items():
                assert images[path] == (w, h, bw, bh), (name, path)

    for n, p in SHARDS:
        assert got["shards"][f"{n},{p}"] == [batches_per_process(n, p)] * p, (n, p)
    for n, g in ACCUM:
        assert got["accum"][f"{n},{g}"] == [steps_per_epoch(n, g)] * 2, (n, g)
