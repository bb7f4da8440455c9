"""Sign-in, the live queue and screen pop, calls and their stories, routing feedback.

The other pages live beside this module (work, reports, editor); importing them here
registers their views on the one blueprint.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import (Response, abort, flash, redirect, render_template, request, stream_with_context,
                   url_for)
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ivr import rules_source
from ivr.store import calls, console, db, history, models
from ivr.store.console import Feedback
from ivr.store.models import utcnow
from ivr.store.privacy import mask_number
from ivr.telephony.security import twilio_signed
from ivr.telephony.twiml import render_empty
from ivr.web.console import auth, queries
from ivr.web.console.blueprint import bp, csrf
from ivr.web.console.forms import FeedbackForm, LoginForm, RightForm

__all__ = ["bp", "csrf"]

log = logging.getLogger(__name__)


# --- page helpers ------------------------------------------------------------------------------
def department_names() -> dict[str, str]:
    rules = rules_source.current_rules()
    return {dep_id: dep.name.get("en", dep_id) for dep_id, dep in rules.departments.items()}


@bp.app_template_filter("masked")
def _masked(number: str | None) -> str:
    return mask_number(number) or "unknown"


@bp.app_template_filter("ago")
def _ago(seconds: float | int | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@bp.app_template_filter("when")
def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


@bp.app_template_filter("percent")
def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f} %"


@bp.context_processor
def _globals() -> dict[str, Any]:
    return {"departments": department_names()}


@bp.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError) -> tuple[str, int]:
    return render_template("console/error.html", title="Form refused",
                           message="This form was not sent by a console page you opened (its security token is "
                                   "missing or expired). Nothing was changed. Go back, reload the page and try again."), 400


@bp.app_errorhandler(403)
def _forbidden(error: Any) -> Any:
    if request.blueprint != "console":
        return error
    return render_template("console/error.html", title="Not allowed",
                           message="Your role does not include this page. Ask an admin if you need it."), 403


# --- sign in -----------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        s = db.session()
        username = form.username.data.strip()
        user, problem = auth.authenticate(s, username, form.password.data)
        auth.audited(s, "login" if not problem else "login.failed", username, actor=username,
                     reason=problem or "ok", ip=request.remote_addr or "")
        s.commit()
        if user is not None and not problem:
            login_user(auth.console_user(user))
            target = request.args.get("next", "")
            # Only local paths: an open redirect would let a phishing link land on a fake page.
            if not target.startswith("/console") or target.startswith("//"):
                target = url_for("console.home")
            return redirect(target)
        if problem.startswith("locked"):
            flash("Too many wrong passwords: this account is locked for 15 minutes. An admin can "
                  "reset it with `ivr users reset-password`.", "error")
        else:
            flash("Wrong username or password.", "error")
    return render_template("console/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Any:
    s = db.session()
    auth.audited(s, "logout", current_user.username)
    s.commit()
    logout_user()
    flash("Signed out.", "info")
    return redirect(url_for("console.login"))


@bp.get("/")
@auth.requires("agent")
def home() -> Any:
    return redirect(url_for("console.queue"))


# --- live queue and screen pop -----------------------------------------------------------------
def _queue_cards() -> list[dict[str, Any]]:
    waiting = queries.waiting_now(db.session(), utcnow())
    names = department_names()
    return [{**w.__dict__, "department_name": names.get(w.department, w.department or "–"),
             "masked": mask_number(w.from_number) or "unknown"} for w in waiting]


@bp.get("/queue")
@auth.requires("agent")
def queue() -> Any:
    cards = _queue_cards()
    per_department: dict[str, int] = {}
    for card in cards:
        per_department[card["department_name"]] = per_department.get(card["department_name"], 0) + 1
    if request.args.get("fragment"):
        return render_template("console/_queue_table.html", cards=cards, per_department=per_department)
    return render_template("console/queue.html", cards=cards, per_department=per_department,
                           pop_after=queries.last_event_id(db.session()))


@bp.get("/pop.json")
@auth.requires("agent")
def pop() -> Any:
    """Calls bridged to the signed-in agent's line since event `after` (polled by every page)."""
    after = request.args.get("after", "0")
    after_id = int(after) if after.isdigit() else 0
    s = db.session()
    found = queries.pops_for(s, current_user.line, after_id, utcnow())
    cards = []
    for item in found:
        state = calls.load_state(s, item["sid"])
        record = s.get(models.Call, item["sid"])
        cards.append({"event": item["event"], "sid": item["sid"],
                      "url": url_for("console.call", sid=item["sid"]),
                      "department": department_names().get(state.department or "", state.department or "") if state else "",
                      "heard": state.heard if state else "", "intent": state.intent if state else None,
                      "confidence": state.confidence if state else None,
                      "language": state.language if state else "",
                      "from": mask_number(record.from_number if record else "")})
    latest = max([after_id] + [c["event"] for c in cards])
    return {"after": latest, "pops": cards}


@bp.route("/hooks/dequeued", methods=["GET", "POST"])
@twilio_signed
def dequeued() -> Any:
    """<Dial><Queue url=…/console/hooks/dequeued?line=AGENT_LINE>: an agent took a queued caller.

    Twilio requests it on the caller's leg just before bridging; we note the bridge (screen pop,
    queue page) and answer empty TwiML so the bridge goes ahead even if the note fails.
    """
    sid = (request.values.get("CallSid") or "")[:64]
    line = (request.args.get("line") or request.values.get("line") or "")[:128]
    note_bridged(sid, line)
    return Response(str(render_empty()), mimetype="text/xml")


def note_bridged(parent_sid: str, line: str, known: bool | None = None) -> None:
    """Record that call `parent_sid` is being bridged to `line`; never raises (a pop is not worth a call).

    `known`: whether the call exists, when the caller has just read it (saves reading it again)."""
    if not parent_sid or not line:
        return
    s = db.session()
    try:
        if known is False or (known is None and calls.load_state(s, parent_sid) is None):
            return
        calls.add_event(s, parent_sid, "bridged", {"line": line})
        s.commit()
    except (SQLAlchemyError, ValueError) as exc:
        s.rollback()
        log.warning("could not note the bridge of call %s: %s", parent_sid, type(exc).__name__)


# --- calls -------------------------------------------------------------------------------------
def _parse_day(raw: str | None, end: bool = False) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        flash(f"{raw!r} is not a date or time (use 2026-12-01 or 2026-12-01T09:30).", "error")
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if end and len(raw) <= 10:
        value += timedelta(days=1)   # "until 2026-12-01" includes that whole day
    return value


@bp.get("/calls")
@auth.requires("agent")
def calls_list() -> Any:
    args = request.args
    query = queries.Search(start=_parse_day(args.get("from")), end=_parse_day(args.get("to"), end=True),
                           department=args.get("department", "")[:64], outcome=args.get("outcome", "")[:32],
                           words=args.get("q", "")[:200])
    before = args.get("before", "")
    if "|" in before:
        at, _, sid = before.partition("|")
        try:
            query.before = (datetime.fromisoformat(at), sid[:64])
        except ValueError:
            pass
    page = queries.search_calls(db.session(), query)
    older = None
    if page.more and page.rows:
        last = page.rows[-1]
        older = url_for("console.calls_list", **{**args.to_dict(), "before": f"{last.started_at.isoformat()}|{last.sid}"})
    outcomes = ["transferred", "queued", "operator", "voicemail", "callback", "after_hours", "reported",
                "alert_heard", "emergency", "abandoned"]
    return render_template("console/calls.html", page=page, args=args, older=older, outcomes=outcomes)


@bp.get("/calls/<sid>")
@auth.requires("agent")
def call(sid: str) -> Any:
    s = db.session()
    record = history.call_record(s, sid[:64])
    if record is None:
        abort(404)
    names = department_names()
    form = FeedbackForm()
    routed = (record.get("outcome_detail") or {}).get("department") or (record.get("state") or {}).get("department")
    choices = [("", "choose…")] + sorted(names.items(), key=lambda kv: kv[1])
    return render_template("console/call.html", call=record, timeline=_timeline(record), form=form, choices=choices,
                           right=RightForm(), routed=routed, feedback=queries.feedback_for(s, sid))


def _timeline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Turns and events in time order, each as one line of the call's story."""
    items: list[tuple[str, int, dict[str, Any]]] = []
    for turn in record["turns"]:
        items.append((turn["at"] or "", 0, {"type": "turn", **turn}))
    for event in record["events"]:
        if event["kind"] in ("status",) and event["detail"].get("status") not in ("completed", "busy", "no-answer", "failed", "canceled"):
            continue
        items.append((event["at"] or "", 1, {"type": "event", **event}))
    items.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in items]


@bp.post("/calls/<sid>/feedback")
@auth.requires("agent")
def feedback(sid: str) -> Any:
    s = db.session()
    record = history.call_record(s, sid[:64])
    if record is None:
        abort(404)
    names = department_names()
    routed = (record.get("outcome_detail") or {}).get("department") or (record.get("state") or {}).get("department") or ""
    said = " ".join(t["heard"] for t in record["turns"] if t.get("heard") and t["step"] in ("ask", "welcome", "confirm")
                    and (t.get("classification") is not None))
    if request.form.get("verdict") == "right":
        verdict, correct = "right", routed
    else:
        form = FeedbackForm()
        if not form.validate_on_submit() or form.correct_department.data not in names:
            flash("Choose the department the call should have gone to.", "error")
            return redirect(url_for("console.call", sid=sid))
        verdict, correct = "wrong", form.correct_department.data
    console.add_feedback(s, call_sid=record["sid"], author=current_user.username, verdict=verdict,
                         routed_department=routed, correct_department=correct, text=said[:2000],
                         language=record.get("language") or "en", note=(request.form.get("note") or "")[:500])
    auth.audited(s, "feedback", record["sid"], verdict=verdict, routed=routed, correct=correct)
    s.commit()
    flash("Thank you: routing feedback saved." if verdict == "right"
          else f"Saved: wrong department → {names.get(correct, correct)}.", "info")
    return redirect(url_for("console.call", sid=sid))


@bp.get("/feedback.jsonl")
@auth.requires("supervisor")
def feedback_export() -> Any:
    """Agents' verdicts as labelled JSON Lines: `ivr route --batch FILE --json` scores them."""
    s = db.session()

    def lines() -> Any:
        stmt = select(Feedback).order_by(Feedback.id).execution_options(yield_per=500)
        for item in s.scalars(stmt):
            if not item.text or not item.correct_department:
                continue
            yield json.dumps({"text": item.text, "lang": item.language, "department": item.correct_department,
                              "routed": item.routed_department, "verdict": item.verdict, "call": item.call_sid,
                              "at": item.created_at.isoformat()}, ensure_ascii=False) + "\n"

    return Response(stream_with_context(lines()), mimetype="application/x-ndjson",
                    headers={"Content-Disposition": "attachment; filename=routing-feedback.jsonl"})

