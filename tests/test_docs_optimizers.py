"""docs/optimizers.md documents every registered optimizer.

Adding an optimizer to ``advisor.knowledge.optimizers`` without a section in the docs fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from advisor.knowledge.optimizers import get_optimizer_info, list_optimizers

DOCS = Path(__file__).parents[1] / "docs" / "optimizers.md"


def _section(text: str, name: str) -> str | None:
    """The body of the ``## ...`name`...`` section, up to the next level-2 heading."""
    lines = text.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith("## ") and f"`{name}`" in line),
        None,
    )
    if start is None:
        return None
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
        len(lines),
    )
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("name", list_optimizers())
def test_optimizer_is_documented(name: str) -> None:
    section = _section(DOCS.read_text(encoding="utf-8"), name)
    assert section is not None, f"{DOCS.name} has no '## `{name}` ...' section"

    blocks = re.findall(r"\$\$(.+?)\$\$", section, flags=re.DOTALL)
    assert any(block.strip() for block in blocks), f"section `{name}` has no $$ ... $$ update rule"

    paper = get_optimizer_info(name).paper
    surname = re.sub(r"\W", "", paper.split()[0])
    assert surname in section, f"section `{name}` does not cite {surname} ({paper!r})"
    year = re.search(r"\b(1[89]|20)\d\d\b", paper)
    if year:  # several papers share a surname (Liu 1989, Liu 2020): the year tells them apart
        assert year.group(0) in section, f"section `{name}` lacks the paper's year {year.group(0)}"
