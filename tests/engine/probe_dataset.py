"""Run with the trainer's Python: build sd-scripts' own DreamBooth dataset from a dataset TOML.

    python probe_dataset.py SD_SCRIPTS_DIR DATASET_TOML

Prints JSON as its last line: per dataset, each image's caption as sd-scripts read it, the buckets it
made (resolution -> images x repeats) and its image count; or the exception that stopped it (type and
message). Loads no model: captions and sizes are what the dataset reads when it is built.
"""

import json
import os
import sys


def main():
    folder, config = sys.argv[1:3]
    sys.path.insert(0, folder)
    os.chdir(folder)
    sys.argv = ["train_network.py"]
    import train_network
    from library import config_util

    args = train_network.setup_parser().parse_args([])
    try:
        user_config = config_util.load_user_config(config)
        sanitizer = config_util.ConfigSanitizer(True, True, False, True)
        blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
        group, _ = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
    except BaseException as exc:  # noqa: BLE001 - the failure is the answer
        print(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)}}))
        return
    out = []
    for dataset in group.datasets:
        if dataset.bucket_manager is None:  # usually made while the group is built; a second call adds twice
            dataset.make_buckets()
        buckets = {}
        manager = dataset.bucket_manager
        for reso, count in zip(manager.resos, map(len, manager.buckets), strict=True):
            if count:
                buckets[f"{reso[0]}x{reso[1]}"] = count
        captions = {os.path.basename(k): v.caption for k, v in dataset.image_data.items()}
        out.append({"images": len(dataset.image_data), "captions": captions, "buckets": buckets})
    print(json.dumps({"datasets": out}))


main()
