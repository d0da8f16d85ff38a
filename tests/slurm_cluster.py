"""A SLURM cluster of two nodes on loopback, for tests: munged, slurmctld and one slurmd per node started
in a folder of their own and stopped by their pids, nothing of the machine's configuration touched.

Made for a container: no systemd, no cgroups (proctrack/linuxproc, task/none), everything as root
(SlurmUser=root), state, spool, logs, pid files and munge's socket and key in the folder, ports on
127.0.0.1 that were free a moment ago. The nodes, node1 and node2, are two slurmd on this host (Debian's
SLURM is built with multiple-slurmd: `scontrol show config` says MULTIPLE_SLURMD = Yes), each `slurmd -N
NAME` with its own Port, spool folder, pid and log file (%n in the paths); each has the machine's CPUs
and most of its memory, so a job of --nodes=2 runs one task on each and srun steps reach both. No node
may be called localhost: SLURM's lookup returns a lone node of that name for any name asked, and the
second node's line then fails with "Duplicated NodeHostName". The node names do not resolve: a run over
both nodes that needs machine 0's address names it (launch.main_process_ip). No accounting daemon:
AccountingStorageType=accounting_storage/none (so `sacct` has no database) and JobCompType=jobcomp/filetxt,
whose file `sacct --completion` reads. Timing knobs are low so a time limit is enforced within about half a
minute of being reached (OverTimeLimit=0, KillWait=10: the seconds between SIGTERM and SIGKILL in which a
run writes its end; SLURM's default is 30, InactiveLimit=0, MinJobAge=600 so `scontrol show job` still
knows finished jobs).

    python tests/slurm_cluster.py DIR     # by hand: start one, print SLURM_CONF=..., Enter stops it
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


class ClusterError(Exception):
    """The daemons could not be started here; the message says which step failed and what it said."""


def program(name: str) -> str | None:
    """A SLURM or munge program: on PATH, or in the sbin folders where Debian puts the daemons."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if program(p) is None]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


@dataclass
class Cluster:
    root: Path
    nodes: int = 2
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.nodes + 1)]

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What a client (sbatch, squeue, artlab-kohya submit) needs to reach this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log", "munge"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        memory = max(256, int(_memory_mb() * 0.8))
        nodes = "\n".join(
            f"NodeName={name} NodeAddr=127.0.0.1 NodeHostname=localhost Port={_free_port()} CPUs={self.cpus}"
            f" RealMemory={memory} State=UNKNOWN"
            for name in self.names
        )
        self.conf.write_text(
            f"""\
ClusterName=artlabtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={r}/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
OverTimeLimit=0
KillWait=10
InactiveLimit=0
MinJobAge=600
MessageTimeout=10
SlurmdTimeout=60
{nodes}
PartitionName=test Nodes={",".join(self.names)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""",
            encoding="ascii",
        )
        key = r / "munge" / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        (r / "munge").chmod(0o700)

    def _daemon(self, name: str, argv: list[str], pid_file: Path, log: Path) -> None:
        argv = [program(argv[0]) or argv[0], *argv[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **self.env})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text().strip())
                os.kill(pid, 0)
                self.pids[name] = pid
                return
            time.sleep(0.1)
        said = (done.stdout + done.stderr).strip()
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
        raise ClusterError(f"{name} did not start (exit {done.returncode}): {said}\n{log.name}: {tail}")

    def start(self) -> Cluster:
        self._write_config()
        r = self.root
        self._daemon(
            "munged",
            [
                "munged", "--force",
                f"--socket={r}/munge/munge.socket", f"--key-file={r}/munge/munge.key",
                f"--pid-file={r}/munge/munged.pid", f"--log-file={r}/log/munged.log",
                f"--seed-file={r}/munge/munged.seed",
            ],
            r / "munge" / "munged.pid",
            r / "log" / "munged.log",
        )  # fmt: skip
        self._daemon(
            "slurmctld", ["slurmctld", "-c", "-f", str(self.conf)], r / "slurmctld.pid", r / "log" / "slurmctld.log"
        )
        for name in self.names:
            self._daemon(
                f"slurmd {name}",
                ["slurmd", "-c", "-N", name, "-f", str(self.conf)],
                r / f"slurmd-{name}.pid",
                r / "log" / f"slurmd-{name}.log",
            )
        self.wait_idle()
        return self

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.env})

    def wait_idle(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        said = ""
        while time.monotonic() < deadline:
            done = self.run("sinfo", "-h", "-N", "-o", "%N %T")
            said = (done.stdout + done.stderr).strip()
            states = dict(line.split() for line in done.stdout.splitlines() if len(line.split()) == 2)
            if done.returncode == 0 and all(states.get(name) == "idle" for name in self.names):
                return
            time.sleep(0.3)
        logs = "\n".join(
            f"slurmd-{name}.log: {(self.root / 'log' / f'slurmd-{name}.log').read_text(errors='replace')[-1000:]}"
            for name in self.names
            if (self.root / "log" / f"slurmd-{name}.log").exists()
        )
        raise ClusterError(f"the nodes did not become idle within {timeout:.0f} s (sinfo: {said!r})\n{logs}")

    def stop(self) -> list[str]:
        """Cancel what is still queued or running, stop the daemons (slurmd, slurmctld, munged: the
        reverse of the start), then end any process still carrying this cluster's SLURM_CONF (a job
        step whose slurmd is gone). Returns what needed SIGKILL or was left over: empty when all went
        as it should."""
        problems = []
        if self.pids.get("slurmctld"):
            jobs = self.run("squeue", "-h", "-o", "%A").stdout.split()
            if jobs:
                self.run("scancel", *sorted(set(jobs)))
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and self.run("squeue", "-h", "-o", "%A").stdout.strip():
                    time.sleep(0.5)
        for name in (*(f"slurmd {n}" for n in self.names), "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                problems.append(f"{name} needed SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid, command in self.leftovers():
            problems.append(f"left running: {pid} {command}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return problems

    def leftovers(self) -> list[tuple[int, str]]:
        """Live processes started by this cluster: their environment names its SLURM_CONF."""
        mark = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if mark not in f.read().split(b"\0"):
                        continue
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            if _alive(int(entry)) and int(entry) not in self.pids.values():
                found.append((int(entry), command))
        return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie still answers kill(0); its state says Z
    return True


if __name__ == "__main__":
    cluster = Cluster(Path(sys.argv[1]).resolve()).start()
    print(f"export SLURM_CONF={cluster.conf}", flush=True)
    try:
        input("Enter stops the cluster\n")
    finally:
        print("stopped;", cluster.stop() or "nothing left")
