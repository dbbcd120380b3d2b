"""A benchmark's doc: the part it generates, and the part written by hand below a marker."""

from __future__ import annotations

from pathlib import Path

#: the line below which a benchmark's doc is written by hand (kept on regeneration)
HAND = "<!-- written by hand below: kept when the benchmark regenerates this file -->"


def write_keeping_hand_part(path: Path, generated: str) -> None:
    """Write ``generated``, then whatever ``path`` already holds from the ``HAND`` line on."""
    old = path.read_text() if path.exists() else ""
    kept = old[old.index(HAND) :] if HAND in old else HAND + "\n"
    path.write_text(generated.rstrip("\n") + "\n\n" + kept)


#: Up to this many commands are named inline; a longer history is counted there and
#: listed in its own section (:func:`commands_section`), so the doc opens readably.
INLINE_COMMANDS = 2
RUNS_HEADING = "Runs that made these figures"


def commands_line(commands: list[str]) -> str:
    """The commands that made a doc's figures, in order: `a` then `b`; beyond
    ``INLINE_COMMANDS``, their count and where :func:`commands_section` lists them."""
    if len(commands) <= INLINE_COMMANDS:
        return " then ".join(f"`{c}`" for c in commands)
    return f"{len(commands)} runs, listed in order under *{RUNS_HEADING}* below"


def commands_section(commands: list[str]) -> str:
    """The numbered list that :func:`commands_line` points to ('' when it names them inline)."""
    if len(commands) <= INLINE_COMMANDS:
        return ""
    return f"## {RUNS_HEADING}\n\n" + "\n".join(f"{i}. `{c}`" for i, c in enumerate(commands, 1))


def write_section(path: Path, name: str, script: str, text: str) -> None:
    """Put ``text`` between ``path``'s ``name`` markers (written by ``script``); append the
    section at the end when the markers are not there yet. Put it below the ``HAND`` line
    of a generated doc, so that the doc's own benchmark keeps it."""
    start = f"<!-- {name}: written by {script} -->"
    end = f"<!-- /{name} -->"
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.strip()}\n{end}"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
