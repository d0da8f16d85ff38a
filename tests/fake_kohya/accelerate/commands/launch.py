"""Fake `accelerate launch` for tests: run the script as a child, exit 1 if it fails (as accelerate does)."""

import subprocess
import sys

args = sys.argv[1:]
script = next(i for i, a in enumerate(args) if a.endswith(".py"))
cmd = [sys.executable, args[script], *args[script + 1 :]]
proc = subprocess.Popen(cmd)
rc = proc.wait()  # no SIGINT handling: Ctrl-C raises KeyboardInterrupt here, as in accelerate
if rc != 0:
    sys.stderr.write(
        "Traceback (most recent call last):\n"
        '  File "accelerate/commands/launch.py", line 1, in <module>\n'
        f"subprocess.CalledProcessError: Command '{cmd}' returned non-zero exit status {rc}.\n"
    )
    sys.exit(1)
