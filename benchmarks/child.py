"""The benchmarks' child processes: what they report, and how it is read back."""

from __future__ import annotations

import json
import subprocess


def peak_mib() -> float:
    """This process's peak resident memory (``VmHWM``), in MiB.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it over from the parent
    through fork and exec, so a child of a benchmark that had grown larger
    (by training a model in-process) reports the parent's peak, not its own.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def report(command: list[str]) -> dict:
    """Run a child; the last line it prints is its JSON report. A failure ends the benchmark."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])
