"""A one-line progress display on stderr for long work (redrawn in place on a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from advisor.core.units import format_duration


class Progress:
    """Shows ``phase  trials done/pruned/diverged  best  time left`` on one line.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) a line is printed at most
    every ``every_s`` seconds. ``enabled=False`` makes every call a no-op.
    """

    def __init__(
        self, *, enabled: bool = True, stream: TextIO | None = None, every_s: float = 10.0
    ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self._last = 0.0
        self._width = 0

    def update(self, message: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            pad = max(self._width - len(message), 0)
            self.stream.write("\r" + message + " " * pad)
            self._width = len(message)
            self.stream.flush()
        elif force or now - self._last >= self.every_s:
            self.stream.write(message + "\n")
            self.stream.flush()
            self._last = now

    def done(self, message: str = "") -> None:
        if not self.enabled:
            return
        if self.tty:
            self.update(message)
            self.stream.write("\n")
            self._width = 0
        elif message:
            self.stream.write(message + "\n")
        self.stream.flush()


def search_line(counts: dict[str, int], best: float | None, left_s: float) -> str:
    """``search  12 trials: 4 complete, 7 pruned, 1 diverged | best val 95.10% | 0m41s left``."""
    n = sum(counts.get(k, 0) for k in ("complete", "pruned", "diverged", "failed"))
    best_s = f"{best * 100:.2f}%" if best is not None else "-"
    return (
        f"search  {n} trials: {counts.get('complete', 0)} complete, {counts.get('pruned', 0)} pruned, "
        f"{counts.get('diverged', 0)} diverged | best val {best_s} | {format_duration(max(left_s, 0))} left"
    )
