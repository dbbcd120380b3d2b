"""README.md and docs/cli.md hold the commands' own --help and the API's own docstrings."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_references_are_in_sync_with_the_code() -> None:
    reference = runpy.run_path(str(ROOT / "docs" / "generate_reference.py"))
    assert reference["main"](["--check"]) == 0, "run: python docs/generate_reference.py"


def test_readme_rule_files_are_valid_rules(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from advisor.cli import cli

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    for i, block in enumerate(blocks):
        rule_file = tmp_path / f"readme_{i}.toml"
        rule_file.write_text(block)
        res = CliRunner().invoke(cli, ["rules", "check", str(rule_file)])
        assert res.exit_code == 0, f"README toml block {i}: {res.output}"
