"""Fake `accelerate launch` for tests: run the script as a child, exit 1 if it fails (as accelerate does).

Over several machines (--num_machines, --machine_rank) the child gets the variables torchrun gives the
first process of its machine (RANK, WORLD_SIZE, LOCAL_RANK, GROUP_RANK, MASTER_ADDR, MASTER_PORT), so
the stand-in trainer knows, as sd-scripts does, whether it is the main process (the one that saves)."""

import os
import subprocess
import sys

args = sys.argv[1:]
script = next(i for i, a in enumerate(args) if a.endswith(".py"))
options = {}  # accelerate's own options, before the script: --flag value, or --flag alone
for i, arg in enumerate(args[:script]):
    if arg.startswith("--"):
        options[arg] = args[i + 1] if i + 1 < script and not args[i + 1].startswith("--") else ""
env = dict(os.environ)
if "--machine_rank" in args[:script]:
    machines, total = int(options.get("--num_machines", "1")), int(options.get("--num_processes", "1"))
    rank = int(options["--machine_rank"])
    env |= {
        "RANK": str(rank * (total // machines)),
        "WORLD_SIZE": str(total),
        "LOCAL_RANK": "0",
        "GROUP_RANK": str(rank),
        "MASTER_ADDR": options.get("--main_process_ip", ""),
        "MASTER_PORT": options.get("--main_process_port", ""),
    }
cmd = [sys.executable, args[script], *args[script + 1 :]]
proc = subprocess.Popen(cmd, env=env)
rc = proc.wait()  # no SIGINT handling: Ctrl-C raises KeyboardInterrupt here, as in accelerate
if rc != 0:
    sys.stderr.write(
        "Traceback (most recent call last):\n"
        '  File "accelerate/commands/launch.py", line 1, in <module>\n'
        f"subprocess.CalledProcessError: Command '{cmd}' returned non-zero exit status {rc}.\n"
    )
    sys.exit(1)
