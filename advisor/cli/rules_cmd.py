"""``advisor rules``: list, show and check the selection rules."""

from __future__ import annotations

import json

import click

from advisor.cli.options import format_option, rules_option
from advisor.knowledge.rules import builtin_rules_dir, check_rules, load_dir, load_rules


@click.group()
def rules() -> None:
    """List, show and check the selection rules (rules/*.toml)."""


@rules.command("list")
@rules_option
@format_option("text", "json")
def list_rules(rules_dirs: tuple[str, ...], fmt: str) -> None:
    """List every rule: id, file and reason."""

    ruleset = load_rules(rules_dirs)
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in ruleset], indent=2))
        return
    width = max(len(r.id) for r in ruleset)
    for r in ruleset:
        click.echo(f"{r.id.ljust(width)}  {_file(r.file):20}  {r.reason}")
    click.echo(f"{len(ruleset)} rules")


@rules.command("show")
@click.argument("rule_id")
@rules_option
def show(rule_id: str, rules_dirs: tuple[str, ...]) -> None:
    """Show one rule in full: conditions, effects, reason, source and examples."""

    click.echo(load_rules(rules_dirs).get(rule_id).describe())


@rules.command("check")
@click.argument("directory", required=False, type=click.Path(path_type=str))
def check(directory: str | None) -> None:
    """Validate a rule directory (default: the built-in rules) and run the rules' examples."""

    problems = check_rules(directory)
    if problems:
        for p in problems:
            click.echo(p)
        click.echo(f"{len(problems)} problem(s)")
        raise SystemExit(2)
    count = len(load_dir(directory if directory is not None else builtin_rules_dir()))
    click.echo(f"{count} rules OK")


def _file(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
