"""Peak memory of this process, as the benchmarks report it."""

from __future__ import annotations


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
