"""A scenario's grid in progress, saved chunk by chunk so that a run can stop and resume.

A large scenario's grid (cnn-fashion: ~340 runs of 10 epochs on 20,000 images) takes
longer than one sitting. :func:`validation_grid.run_grid` trains it in chunks of grid
points and, after each chunk, writes what it has to ``<dir>/<scenario>.json``: the grid
points with the results of the seeds already finished, the current seed, and the results of
the chunks of that seed already trained. Run again with the same settings, it goes on from
there; with other settings (seeds, epochs, the grid, --prune, --smoke, the data's size) the
file does not match its :func:`fingerprint` and the grid starts again. The file is deleted
once the scenario's grid is complete (its points are then in the saved grids).

Every chunk trains its members with their own seeds (weights and minibatch order), so a
resumed grid gives the results the uninterrupted one would (up to dropout masks, which a
population draws from one generator).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Progress:
    """Where a grid stands: seeds ``< seed_index`` are folded into the points; ``current``
    holds the finished runs of seed ``seed_index``, in grid order (one dict per run)."""

    fingerprint: str
    seed_index: int = 0
    #: the grid's (optimizer, hyperparameters) pairs still trained (after --prune: fewer)
    specs: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    #: the grid points as ``validation_grid.Point`` fields (``asdict``)
    points: list[dict[str, Any]] = field(default_factory=list)
    current: list[dict[str, Any]] = field(default_factory=list)
    #: seconds spent on this grid by every process so far, up to the last save: a grid
    #: resumed over several sittings reports its whole wall time, not its last sitting's
    elapsed_s: float = 0.0


def fingerprint(**settings: Any) -> str:
    """A short hash of everything that decides the grid's results."""
    text = json.dumps(settings, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path_for(directory: Path, scenario: str) -> Path:
    return directory / f"{scenario}.json"


def load(directory: Path | None, scenario: str, expected: str) -> Progress | None:
    """The saved progress of ``scenario`` if it was made with the same settings, else None."""
    if directory is None:
        return None
    path = path_for(directory, scenario)
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("fingerprint") != expected:
        return None
    saved["specs"] = [(name, dict(h)) for name, h in saved["specs"]]
    return Progress(**saved)


def save(directory: Path | None, scenario: str, progress: Progress) -> None:
    """Write the progress atomically (a stop mid-write keeps the previous file)."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = path_for(directory, scenario)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(progress.__dict__))
    tmp.replace(path)


def finish(directory: Path | None, scenario: str) -> None:
    """The grid is complete: its progress file goes."""
    if directory is not None:
        path_for(directory, scenario).unlink(missing_ok=True)
        if directory.exists() and not any(directory.iterdir()):
            directory.rmdir()
