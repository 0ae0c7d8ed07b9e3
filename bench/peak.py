"""Peak RSS of a child process as the child itself sees it (``VmHWM`` of its own memory map).

``ru_maxrss`` of a child, from ``os.wait4`` or its own ``getrusage(RUSAGE_SELF)``, is not its
own: Linux carries the parent's high-water mark over ``exec``. Measured here: a child started
by a 313 MB parent reported 313 MB through both, while its ``VmHWM`` was 13.5 MB. The bench
process hosts the emulator (hundreds of MB at 100,000 jobs), so every figure taken that way
was the bench's size, not the pipeline's.
"""

from __future__ import annotations

ENV = "UP_JOBS_BENCH_PEAK_FILE"

RUN_AS_MODULE = f"""
import atexit, os, runpy, sys

def _write_peak() -> None:
    with open("/proc/self/status") as status, open(os.environ["{ENV}"], "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])

atexit.register(_write_peak)
module = sys.argv[1]
sys.argv = [module, *sys.argv[2:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""
"""``python -c RUN_AS_MODULE pipeline run ...`` runs ``python -m pipeline run ...`` and writes its
VmHWM (kB) to the file named by ``$UP_JOBS_BENCH_PEAK_FILE`` when it exits."""


def vm_hwm_mb() -> float:
    """This process's own peak RSS in MB."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024
