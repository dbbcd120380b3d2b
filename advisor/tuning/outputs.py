"""The files a tuning run leaves in ``--out``: ``result.json``, ``report.md`` and the figures."""

from __future__ import annotations

import os
from pathlib import Path

from advisor.core.errors import AdvisorError
from advisor.tuning.config import JOURNAL_FILE
from advisor.tuning.plots import write_plots
from advisor.tuning.result import TuneResult


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` all at once: a temporary file beside it, renamed over it.

    A full disk or a crash leaves the previous file (or none), never half a new one.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_report(result: TuneResult, out_dir: str | Path) -> list[Path]:
    """Write ``result.json``, ``report.md`` and the PNG figures into ``out_dir``; return the paths.

    Each file is replaced whole or not at all. A folder that cannot be written (read-only,
    full) raises one :class:`~advisor.core.errors.AdvisorError` that says how to rebuild the
    report later: the study itself is not touched.
    """
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = [
            write_text_atomic(folder / "result.json", result.to_json() + "\n"),
            write_text_atomic(folder / "report.md", result.to_markdown()),
        ]
        return paths + write_plots(result, folder)
    except OSError as exc:
        raise AdvisorError(
            f"cannot write the report into {str(folder)!r}: {exc.strerror or exc}. The study is "
            f"saved; free some space (or choose another folder) and rebuild the report with "
            f"`{rebuild_command(result, folder)}`."
        ) from exc


def rebuild_command(result: TuneResult, folder: Path) -> str:
    """The ``advisor report`` command that rebuilds ``result`` into ``folder``."""
    cmd = f"advisor report --study {result.study_name}"
    if result.storage_display != f"journal:{folder / JOURNAL_FILE}":
        cmd += f" --storage {result.storage_display}"
    return cmd + f" --out {folder}"
