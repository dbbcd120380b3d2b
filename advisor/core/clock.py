"""Where a tuning budget counts from: now, or the start of the ``advisor`` command.

A user who times ``advisor tune --budget 30s`` from the shell counts the interpreter's
start and the imports of torch and Optuna too (seconds on a loaded machine). So the
command line's entry point marks its process (:func:`mark_command_start`), and a budget
then counts from the process's start (:func:`budget_origin`). Called from Python (a
script, a notebook, a test driving the CLI in-process), a budget counts from the call.
"""

from __future__ import annotations

import os
import time

#: Fallback where the OS does not say: when this module was first imported (the command
#: line imports it before torch and Optuna).
_IMPORTED = time.time()
#: This process's start, once the ``advisor`` command's entry point has marked it.
_command_start: float | None = None


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


def mark_command_start() -> None:
    """This process is the ``advisor`` command: its budgets count from the process's start."""
    global _command_start
    _command_start = process_started()


def budget_origin() -> float:
    """When a budget starting now counts from (``time.time()`` scale): the process's start
    in the ``advisor`` command (:func:`mark_command_start`), else now."""
    return time.time() if _command_start is None else _command_start
