"""`ivr holidays [YEAR]` — the days the city's rules close each department, as callers will hear them.

The rules say which holidays the city keeps (docs/rules.md); this lists the dates they give in a
year, so an admin can check a change before deploying it.
"""
from __future__ import annotations

import os
from datetime import date

import click

from ivr.config import shipped
from ivr.routing.hours import closures_between
from ivr.routing.load import load_rules
from ivr.routing.problems import ConfigError


def register(cli: click.Group) -> None:
    """Add `holidays` to `cli`."""

    @cli.command("holidays")
    @click.argument("year", required=False, type=click.IntRange(1970, 2200))
    @click.option("--department", "dept_id", default=None,
                  help="Whose closures (default: the first department that observes the city's holidays).")
    @click.option("--lang", default=None, help="Names in this language (default: the rules' first).")
    @click.option("--rules", "rules_path", default=None, type=click.Path(dir_okay=False),
                  help="Rules file (default: $IVR_RULES_PATH or the shipped routing_rules.yaml).")
    def holidays(year: int | None, dept_id: str | None, lang: str | None, rules_path: str | None) -> None:
        """The closures of YEAR (default: this year): date, weekday, hours closed and name."""
        path = rules_path or os.environ.get("IVR_RULES_PATH") or str(shipped("routing_rules.yaml"))
        try:
            rules = load_rules(path)
        except ConfigError as exc:
            raise click.ClickException(f"the rules have problems (run `ivr check`):\n{exc}") from None
        language = lang or rules.default_language
        if language not in rules.languages:
            raise click.BadParameter(f"choose one of {', '.join(rules.languages)}", param_hint="--lang")
        if dept_id is None:
            dept_id = next((d.id for d in rules.departments.values() if d.observes_holidays),
                           next(iter(rules.departments)))
        department = rules.departments.get(dept_id)
        if department is None:
            raise click.BadParameter(f"no department {dept_id!r}; the rules have {', '.join(rules.departments)}",
                                     param_hint="--department")
        year = year or date.today().year
        closures = closures_between(department, date(year, 1, 1), date(year, 12, 31))
        click.echo(f"{department.id}: {len(closures)} closure{'s' if len(closures) != 1 else ''} in {year}"
                   + ("" if department.observes_holidays else " (does not observe the city's holidays)"))
        for closure in closures:
            span = "all day" if closure.start is None and closure.end is None else \
                f"{closure.start or '00:00'}"[:5] + "–" + (f"{closure.end}"[:5] if closure.end else "24:00")
            click.echo(f"  {closure.day:%Y-%m-%d %a}  {span:<11}  {closure.name_in(language) or '(no name)'}")
