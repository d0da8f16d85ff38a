"""Run with the trainer's Python: feed rendered TOML to sd-scripts' own parser and dataset-config validator.

    python probe_config.py SD_SCRIPTS_DIR SCRIPT CONFIG_TOML

Prints JSON: the argparse namespace after sd-scripts merged --config_file, and the dataset/subset
parameters its BlueprintGenerator produced (voluptuous-validated). Imports no model, loads no weights.
"""

import importlib
import json
import os
import sys


def plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def main():
    folder, script, config = sys.argv[1:4]
    sys.path.insert(0, folder)
    os.chdir(folder)
    module = importlib.import_module(script.removesuffix(".py"))
    from library import config_util, train_util

    parser = module.setup_parser()
    sys.argv = [script, "--config_file", config]  # read_config_from_file parses sys.argv again
    args = parser.parse_args()
    args = train_util.read_config_from_file(args, parser)
    user_config = config_util.load_user_config(str(args.dataset_config))
    sanitizer = config_util.ConfigSanitizer(True, True, args.masked_loss, True)
    blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
    datasets = []
    for dataset in blueprint.dataset_group.datasets:
        datasets.append(
            {
                "params": plain(vars(dataset.params)),
                "subsets": [plain(vars(subset.params)) for subset in dataset.subsets],
            }
        )
    print(json.dumps({"args": plain(vars(args)), "datasets": datasets}))


main()
