"""When this process started: the command line's budget counts from there.

A user who times ``advisor tune --budget 30s`` from the shell counts the interpreter's
start and the imports of torch and Optuna too (seconds on a loaded machine), so the
command line starts its budget clock at the process's own start, not when tuning begins.
"""

from __future__ import annotations

import os
import time

#: Fallback where the OS does not say: when this module was first imported (the command
#: line imports it before torch and Optuna).
_IMPORTED = time.time()


def process_started() -> float:
    """When this process started, on the ``time.time()`` scale.

    Linux: its start in clock ticks after boot (``/proc/self/stat``, field 22) against the
    time since boot (``/proc/uptime``). Elsewhere, or if those cannot be read: when this
    module was imported.

    >>> process_started() <= time.time()
    True
    """
    try:
        with open("/proc/self/stat") as f:
            # the command name (field 2) may hold spaces: count fields after its ")"
            after_name = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        started_ticks = int(after_name[19])  # field 22; after_name[0] is field 3
        age = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return _IMPORTED
    return min(time.time() - max(age, 0.0), _IMPORTED)
