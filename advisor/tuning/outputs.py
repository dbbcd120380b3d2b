"""The files a tuning run leaves in ``--out``: ``result.json``, ``report.md`` and the figures."""

from __future__ import annotations

from pathlib import Path

from advisor.core.errors import AdvisorError
from advisor.tuning.plots import write_plots
from advisor.tuning.result import TuneResult


def write_report(result: TuneResult, out_dir: str | Path) -> list[Path]:
    """Write ``result.json``, ``report.md`` and the PNG figures into ``out_dir``; return the paths.

    A folder that cannot be written raises one :class:`~advisor.core.errors.AdvisorError`
    that says how to rebuild the report elsewhere: the study itself is not touched.
    """
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "result.json", folder / "report.md"]
        paths[0].write_text(result.to_json() + "\n")
        paths[1].write_text(result.to_markdown())
    except OSError as exc:
        raise AdvisorError(
            f"cannot write the report into {str(folder)!r}: {exc.strerror or exc}. "
            "The study is saved; rebuild the report elsewhere with "
            f"`advisor report --study {result.study_name} --out DIR`."
        ) from exc
    return paths + write_plots(result, folder)
