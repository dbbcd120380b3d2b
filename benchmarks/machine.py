"""One line that says where a benchmark ran: CPU, cores, memory, library versions."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return None


def describe() -> str:
    import optuna
    import torch

    mem = memory_gib()
    parts = [
        cpu_model(),
        f"{os.cpu_count()} cores",
        f"{mem:.0f} GiB" if mem is not None else None,
        "no GPU" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        f"{platform.system()} {platform.release()}",
        f"Python {sys.version.split()[0]}",
        f"torch {torch.__version__}",
        f"optuna {optuna.__version__}",
    ]
    return ", ".join(p for p in parts if p)


if __name__ == "__main__":
    print(describe())
