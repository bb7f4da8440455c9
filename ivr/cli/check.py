"""`ivr check [PATH]` — validate routing_rules.yaml (and the prompt catalogues) before deploying.

Exit 0 with a one-line summary on stdout when everything is valid; exit 1 with one
`FILE:LINE: what is wrong and how to fix it` line per problem on stderr otherwise.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import click

from ivr.config import from_environment
from ivr.routing.hours import without_holidays
from ivr.routing.rules import Rules
from ivr.rules_source import check_files


def warnings(rules: Rules, today: date) -> list[str]:
    """Valid but probably not meant: the line still works, so these do not fail the check."""
    missing = without_holidays(rules.departments.values(), today)
    if not missing:
        return []
    which = f"department '{missing[0]}' has" if len(missing) == 1 else \
        f"departments {', '.join(repr(d) for d in missing)} have"
    return [f"{which} no holiday between {today} and {today + timedelta(days=365)}: callers will be sent "
            "to a closed desk on public holidays — give defaults.holidays a country and its public "
            "holidays (docs/rules.md), or set observes_holidays: false for a desk that never closes"]


def _summary(path: str, rules: Rules, prompts_checked: bool) -> str:
    groups = sum(1 for option in rules.menu if option.options)
    parts = [f"{len(rules.departments)} departments", f"{len(rules.intents)} intents",
             f"menu of {len(rules.menu)} entries ({groups} groups)",
             f"languages {', '.join(rules.languages)}",
             "emergency transfer " + ("set" if rules.emergency.transfer else "not set")]
    prompts = "; prompts OK" if prompts_checked else ""
    return f"{path}: OK — {', '.join(parts)}{prompts}"


def register(cli: click.Group) -> None:
    """Add `check` to the `ivr` command group."""

    @cli.command("check")
    @click.argument("path", required=False)
    @click.option("--prompts-dir", default=None,
                  help="Prompt catalogues to check too (default: IVR_PROMPTS_DIR or the shipped prompts/).")
    @click.option("--no-prompts", is_flag=True, help="Check only the rules file.")
    def check(path: str | None, prompts_dir: str | None, no_prompts: bool) -> None:
        """Validate the routing rules at PATH (default: IVR_RULES_PATH or the shipped file)."""
        settings: dict[str, Any] = from_environment()
        rules_path = path or settings["IVR_RULES_PATH"]
        directory = None if no_prompts else (prompts_dir or settings["IVR_PROMPTS_DIR"])
        rules, problems = check_files(rules_path, directory)
        if problems:
            for problem in problems:
                click.echo(str(problem), err=True)
            count = len(problems)
            click.echo(f"{count} problem{'s' if count != 1 else ''} found — fix them and run `ivr check` again.", err=True)
            raise SystemExit(1)
        if rules is None:  # cannot happen: a file that failed to load always reports a problem
            raise click.ClickException(f"{rules_path}: the rules did not load and no problem was reported")
        checked_prompts = directory is not None
        click.echo(_summary(rules_path, rules, checked_prompts))
        for warning in warnings(rules, date.today()):
            click.echo(f"{rules_path}: warning: {warning}", err=True)
        for found in rules.warnings:   # with their line: FILE:LINE: warning: …
            click.echo(f"{found.path}:{found.line}: warning: {found.message}", err=True)
