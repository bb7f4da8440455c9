"""Reports for supervisors: what the line did over a period, as charts (server-side SVG) and CSV.

All figures come from the stored calls, turns, queue events, outcome events and agents' feedback
over [from, to): a handful of indexed range queries, aggregated here.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, render_template, request
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr.routing.hours import city_timezone
from ivr import rules_source
from ivr.store import db, models
from ivr.store.console import Feedback
from ivr.store.models import utcnow
from ivr.web.console import auth
from ivr.web.console.blueprint import bp
from ivr.web.console.views import department_names

Call, Turn, Event = models.Call, models.Turn, models.Event
DEPARTMENT = Call.outcome_detail["department"].as_string()
DEFAULT_DAYS = 7
DEFAULT_SERVICE_LEVEL_S = 60


@dataclass
class Report:
    start: datetime
    end: datetime
    service_level_s: int
    total: int = 0
    per_hour: list[int] = field(default_factory=lambda: [0] * 24)
    per_department: dict[str, int] = field(default_factory=dict)
    per_hour_department: dict[str, list[int]] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    contained: int = 0
    confirmed: int = 0
    menu: int = 0
    operator: int = 0
    queue_exits: int = 0
    queue_abandoned: int = 0
    queue_answered: int = 0
    answered_in_time: int = 0
    waits: list[float] = field(default_factory=list)
    transfers: dict[str, int] = field(default_factory=dict)
    after_hours: dict[str, int] = field(default_factory=dict)
    feedback_right: int = 0
    feedback_wrong: int = 0
    confusions: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def avg_wait(self) -> float | None:
        return sum(self.waits) / len(self.waits) if self.waits else None

    @property
    def p90_wait(self) -> float | None:
        if not self.waits:
            return None
        ordered = sorted(self.waits)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]   # nearest-rank 90th percentile

    def rate(self, part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def service_level(self) -> float | None:
        return self.rate(self.answered_in_time, self.queue_answered + self.queue_abandoned)

    @property
    def speech_accuracy(self) -> float | None:
        return self.rate(self.feedback_right, self.feedback_right + self.feedback_wrong)


def build(s: Session, start: datetime, end: datetime, service_level_s: int, zone: ZoneInfo) -> Report:
    report = Report(start, end, service_level_s)
    in_range = (Call.started_at >= start, Call.started_at < end)
    routed: list[str] = []
    for sid, started, outcome, department in s.execute(select(Call.sid, Call.started_at, Call.outcome, DEPARTMENT)
                                                       .where(*in_range)):
        report.total += 1
        if outcome in ("transferred", "queued"):
            routed.append(sid)
        hour = started.astimezone(zone).hour
        report.per_hour[hour] += 1
        key = department or "(none)"
        report.per_department[key] = report.per_department.get(key, 0) + 1
        report.per_hour_department.setdefault(key, [0] * 24)[hour] += 1
        report.outcomes[outcome or "in progress"] = report.outcomes.get(outcome or "in progress", 0) + 1
        if outcome == "transferred":
            report.transfers[key] = report.transfers.get(key, 0) + 1
        if outcome == "operator":
            report.operator += 1
    steps: dict[str, set[str]] = {}
    for sid, step in s.execute(select(Turn.call_sid, Turn.step).join(Call, Call.sid == Turn.call_sid)
                               .where(*in_range, Turn.step.in_(("menu", "confirm"))).distinct()):
        steps.setdefault(sid, set()).add(step)
    report.menu = sum(1 for found in steps.values() if "menu" in found)
    report.confirmed = sum(1 for found in steps.values() if "confirm" in found)
    # Contained: routed (transferred or queued) by speech alone — no keypad menu, no operator.
    report.contained = sum(1 for sid in routed if "menu" not in steps.get(sid, ()))
    for (detail,) in s.execute(select(Event.detail).where(Event.kind == "queue", Event.created_at >= start,
                                                          Event.created_at < end)):
        result = (detail or {}).get("result")
        try:
            waited = float((detail or {}).get("queue_time_s"))
        except (TypeError, ValueError):
            waited = None
        report.queue_exits += 1
        if result == "hangup":
            report.queue_abandoned += 1
        if result == "bridged":
            report.queue_answered += 1
            if waited is not None and waited <= service_level_s:
                report.answered_in_time += 1
        if waited is not None:
            report.waits.append(waited)
    outcome_of = Event.detail["outcome"].as_string()
    for (department,) in s.execute(select(Event.detail["department"].as_string())
                                   .where(Event.kind == "outcome", Event.created_at >= start, Event.created_at < end,
                                          outcome_of == "after_hours")):
        key = department or "(none)"
        report.after_hours[key] = report.after_hours.get(key, 0) + 1
    for verdict, routed, correct in s.execute(select(Feedback.verdict, Feedback.routed_department, Feedback.correct_department)
                                              .where(Feedback.created_at >= start, Feedback.created_at < end)):
        if verdict == "right":
            report.feedback_right += 1
        else:
            report.feedback_wrong += 1
            report.confusions[(routed, correct)] = report.confusions.get((routed, correct), 0) + 1
    return report


# --- charts (server-side SVG: no script, no CDN, readable without colour) ------------------------
def bar_chart(title: str, labels: list[str], values: list[float], unit: str = "calls") -> Markup:
    width, height, left, bottom, top = 640, 220, 36, 40, 12
    peak = max(values) if values and max(values) > 0 else 1
    slot = (width - left - 8) / max(len(values), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="t{id(values)}">',
             f'<title id="t{id(values)}">{escape(title)}</title>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="axis"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="tick">{peak:g}</text>',
             f'<text x="{left - 4}" y="{height - bottom}" text-anchor="end" class="tick">0</text>']
    for index, (label, value) in enumerate(zip(labels, values)):
        bar = (height - bottom - top) * (value / peak)
        x = left + index * slot + slot * 0.1
        parts.append(f'<rect x="{x:.1f}" y="{height - bottom - bar:.1f}" width="{slot * 0.8:.1f}" height="{bar:.1f}" '
                     f'class="bar"><title>{escape(label)}: {value:g} {escape(unit)}</title></rect>')
        if len(labels) <= 24:
            parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                         f'class="tick">{escape(label[:10])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _period() -> tuple[datetime, datetime, int]:
    now = utcnow()
    end = _day(request.args.get("to"), now + timedelta(seconds=1), plus_day=True)
    start = _day(request.args.get("from"), end - timedelta(days=DEFAULT_DAYS))
    raw = request.args.get("n", "")
    service_level_s = int(raw) if raw.isdigit() and 0 < int(raw) <= 3600 else DEFAULT_SERVICE_LEVEL_S
    return start, end, service_level_s


def _day(raw: str | None, default: datetime, plus_day: bool = False) -> datetime:
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return default
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value + timedelta(days=1) if plus_day and len(raw) <= 10 else value


def _report() -> Report:
    start, end, n = _period()
    return build(db.session(), start, end, n, city_timezone(rules_source.current_rules()))


@bp.get("/reports")
@auth.requires("supervisor")
def reports() -> Any:
    report = _report()
    names = department_names()
    hours = [f"{h:02d}" for h in range(24)]
    charts = {
        "hour": bar_chart("Calls per hour of day", hours, [float(v) for v in report.per_hour]),
        "department": bar_chart("Calls per department", [names.get(k, k) for k in report.per_department],
                                [float(v) for v in report.per_department.values()]),
        "transfers": bar_chart("Transfers by department", [names.get(k, k) for k in report.transfers],
                               [float(v) for v in report.transfers.values()]),
        "after_hours": bar_chart("After-hours calls by department", [names.get(k, k) for k in report.after_hours],
                                 [float(v) for v in report.after_hours.values()]),
    }
    return render_template("console/reports.html", r=report, charts=charts, names=names, hours=hours,
                           args=request.args)


def rows(report: Report, names: dict[str, str]) -> list[tuple[str, str, Any]]:
    """The report as (metric, dimension, value) rows: what the CSV holds."""
    out: list[tuple[str, str, Any]] = [("calls", "all", report.total)]
    out += [("calls_per_hour", f"{h:02d}", v) for h, v in enumerate(report.per_hour)]
    for department, per_hour in sorted(report.per_hour_department.items()):
        out += [("calls_per_hour_department", f"{names.get(department, department)} {h:02d}", v)
                for h, v in enumerate(per_hour) if v]
    out += [("calls_per_department", names.get(k, k), v) for k, v in sorted(report.per_department.items())]
    out += [("containment_rate", "routed by speech, no menu/operator", _round(report.rate(report.contained, report.total))),
            ("confirmations", "calls asked to confirm", report.confirmed),
            ("menu_fallbacks", "calls that used the keypad menu", report.menu),
            ("operator_fallbacks", "calls sent to the operator", report.operator),
            ("queue_abandonment_rate", "hung up while queued", _round(report.rate(report.queue_abandoned, report.queue_exits))),
            ("queue_wait_avg_s", "all queue exits", _round(report.avg_wait)),
            ("queue_wait_p90_s", "all queue exits", _round(report.p90_wait)),
            ("service_level", f"answered within {report.service_level_s} s", _round(report.service_level)),
            ("speech_accuracy_feedback", f"{report.feedback_right} right / {report.feedback_wrong} wrong",
             _round(report.speech_accuracy))]
    out += [("transfers", names.get(k, k), v) for k, v in sorted(report.transfers.items())]
    out += [("after_hours", names.get(k, k), v) for k, v in sorted(report.after_hours.items())]
    out += [("wrong_department", f"{names.get(a, a)} -> {names.get(b, b)}", v) for (a, b), v in sorted(report.confusions.items())]
    return out


def _round(value: float | None) -> Any:
    return "" if value is None else round(value, 4)


@bp.get("/reports.csv")
@auth.requires("supervisor")
def reports_csv() -> Response:
    report = _report()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "dimension", "value", "from", "to"])
    for metric, dimension, value in rows(report, department_names()):
        writer.writerow([metric, dimension, value, report.start.isoformat(), report.end.isoformat()])
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=city-line-report.csv"})
