"""Dump the argument surface of an sd-scripts training script, asked of its own parser.

Run by the trainer's Python, not ours: it imports only sd-scripts and the standard library, because
the trainer's environment need not have artlab-kohya installed.

    python dump_surface.py SD_SCRIPTS_DIR SCRIPT OUT_JSON

Writes {"script": ..., "options": {dest: {type, nargs, choices, default}}} to OUT_JSON, or
{"error": ...} when the script cannot be imported; the output format is that of
artlab_kohya/data/surface-*.json. Switches (actions that take no value) have type "flag".
"""

import argparse
import importlib
import json
import os
import sys
import traceback


def plain(value):
    """Defaults and choices as JSON values; anything else (a Path, a function) as its str()."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def describe(action):
    if action.nargs == 0:  # store_true/store_false/store_const: a switch
        return {"type": "flag", "nargs": None, "choices": None, "default": plain(action.default)}
    # no type: argparse hands over the string as it is
    kind = "str" if action.type is None else getattr(action.type, "__name__", str(action.type))
    return {
        "type": kind,
        "nargs": None if action.nargs is None else str(action.nargs),
        "choices": None if action.choices is None else plain(list(action.choices)),
        "default": plain(action.default),
    }


def dump(folder, script):
    sys.path.insert(0, folder)
    os.chdir(folder)
    module = importlib.import_module(script[: -len(".py")] if script.endswith(".py") else script)
    setup = getattr(module, "setup_parser", None)
    if setup is None:
        return {"error": "no_setup_parser", "message": f"{script} has no setup_parser()"}
    parser = setup()
    options = {}
    for action in parser._actions:
        if action.default == argparse.SUPPRESS or not action.option_strings:
            continue  # --help, --version, positionals: nothing a config file can set
        options[action.dest] = describe(action)
    return {"script": script, "options": options}


def main():
    folder, script, out = sys.argv[1:4]
    try:
        result = dump(folder, script)
        code = 0 if "error" not in result else 3
    except ImportError as exc:
        result = {"error": "import", "module": exc.name, "message": str(exc)}
        code = 3
    except BaseException as exc:  # noqa: BLE001 - every failure goes back as data
        result = {
            "error": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc()[-4000:],
        }
        code = 3
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
