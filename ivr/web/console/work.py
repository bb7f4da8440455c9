"""Callbacks and voicemails: a work list ordered by due time; claim, call back, record the outcome.

Every stored callback request or voicemail (`messages`) gets a work item the first time the list
is shown. Calling back uses Twilio's REST API: `calls.create` rings the agent's own line and,
when the agent answers, dials the citizen with the city line as caller ID. Retry rules: no answer
or busy puts the item back on the list after RETRY_DELAYS[attempt]; after MAX_ATTEMPTS it is given up.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.twiml.voice_response import VoiceResponse

from ivr.store import console, db, models
from ivr.store.console import WorkItem
from ivr.store.models import utcnow
from ivr.store.privacy import mask_number
from ivr.telephony.rest import NotConfigured, rest_client
from ivr.web.console import auth
from ivr.web.console.blueprint import bp
from ivr.web.console.forms import OUTCOMES, ActionForm, OutcomeForm
from ivr.web.console.views import department_names

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
RETRY_DELAYS = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))
FINAL = {"reached", "left_message", "wrong_number"}
RETRY = {"no_answer", "busy"}
LIST_LIMIT = 200


def ensure_items(s: Any) -> None:
    """A work item for every message that has none yet (due when the message was left)."""
    missing = s.execute(select(models.Message.id, models.Message.created_at)
                        .outerjoin(WorkItem, WorkItem.message_id == models.Message.id)
                        .where(WorkItem.id.is_(None)).limit(1000)).all()
    if missing:
        console.add_work_items(s, [(message_id, created) for message_id, created in missing])
        s.commit()


def _item(item_id: int) -> tuple[WorkItem, models.Message, models.Call]:
    s = db.session()
    item = s.get(WorkItem, item_id)
    if item is None:
        abort(404)
    message = s.get(models.Message, item.message_id)
    call = s.get(models.Call, message.call_sid) if message else None
    if message is None or call is None:
        abort(404)
    return item, message, call


@bp.get("/work")
@auth.requires("agent")
def work_list() -> Any:
    s = db.session()
    ensure_items(s)
    rows = s.execute(select(WorkItem, models.Message, models.Call)
                     .join(models.Message, models.Message.id == WorkItem.message_id)
                     .join(models.Call, models.Call.sid == models.Message.call_sid)
                     .where(WorkItem.status.in_(("open", "claimed")))
                     .order_by(WorkItem.due_at, WorkItem.id).limit(LIST_LIMIT)).all()
    closed = s.execute(select(WorkItem, models.Message, models.Call)
                       .join(models.Message, models.Message.id == WorkItem.message_id)
                       .join(models.Call, models.Call.sid == models.Message.call_sid)
                       .where(WorkItem.status.in_(("done", "gave_up")))
                       .order_by(WorkItem.last_attempt_at.desc()).limit(20)).all()
    return render_template("console/work.html", rows=rows, closed=closed, now=utcnow(), action=ActionForm())


@bp.get("/work/<int:item_id>")
@auth.requires("agent")
def work_item(item_id: int) -> Any:
    item, message, call = _item(item_id)
    mine = item.status == "claimed" and item.claimed_by == current_user.username
    number = call.from_number if mine else mask_number(call.from_number)
    state = call.state or {}
    return render_template("console/work_item.html", item=item, message=message, call=call, number=number,
                           mine=mine, heard=state.get("heard") or "", action=ActionForm(), outcome=OutcomeForm(), outcomes=OUTCOMES,
                           max_attempts=MAX_ATTEMPTS, department=department_names().get(message.department, message.department))


@bp.post("/work/<int:item_id>/claim")
@auth.requires("agent")
def work_claim(item_id: int) -> Any:
    ActionForm()   # CSRF is checked for every console POST (blueprint)
    s = db.session()
    # A conditional UPDATE: two agents pressing "claim" at once cannot both get the item.
    claimed = console.update_work_item(s, item_id, WorkItem.status == "open", status="claimed",
                                       claimed_by=current_user.username, claimed_at=utcnow())
    if claimed:
        auth.audited(s, "work.claim", f"work:{item_id}")
        s.commit()
        flash("Claimed: the number is shown while you work on it.", "info")
    else:
        s.rollback()
        flash("Someone else has already claimed this item, or it is closed.", "error")
    return redirect(url_for("console.work_item", item_id=item_id))


@bp.post("/work/<int:item_id>/release")
@auth.requires("agent")
def work_release(item_id: int) -> Any:
    s = db.session()
    item, _message, _call = _item(item_id)
    if item.status == "claimed" and (item.claimed_by == current_user.username or current_user.can("supervisor")):
        console.update_work_item(s, item_id, status="open", claimed_by=None, claimed_at=None)
        auth.audited(s, "work.release", f"work:{item_id}")
        s.commit()
        flash("Released back to the list.", "info")
    return redirect(url_for("console.work_list"))


def _callback_twiml(citizen: str, caller_id: str, department: str) -> str:
    """What the agent's phone plays when they pick up: a cue, then the citizen is dialled."""
    response = VoiceResponse()
    response.say(f"City line call back for {department}. Connecting you to the citizen now.")
    dial = response.dial(caller_id=caller_id or None, timeout=30)
    dial.number(citizen)
    return str(response)


@bp.post("/work/<int:item_id>/call")
@auth.requires("agent")
def work_call(item_id: int) -> Any:
    s = db.session()
    item, message, call = _item(item_id)
    if item.status != "claimed" or item.claimed_by != current_user.username:
        flash("Claim the item before calling back.", "error")
        return redirect(url_for("console.work_item", item_id=item_id))
    if not current_user.line:
        flash("Your account has no phone line to ring first; an admin can set one (ivr users add --line).", "error")
        return redirect(url_for("console.work_item", item_id=item_id))
    caller_id = current_app.config.get("IVR_CALLER_ID") or call.to_number
    department = department_names().get(message.department, message.department)
    try:
        outbound = rest_client(current_app.config).calls.create(
            to=current_user.line, from_=caller_id, twiml=_callback_twiml(call.from_number, caller_id, department))
    except NotConfigured as exc:
        flash(f"Calls cannot be placed: {exc}.", "error")
        return redirect(url_for("console.work_item", item_id=item_id))
    except TwilioRestException as exc:
        log.warning("call back for work item %d refused by Twilio: %s %s", item_id, exc.status, exc.code)
        flash(f"Twilio refused the call ({exc.code}: {exc.msg}). Nothing was recorded; check the numbers.", "error")
        return redirect(url_for("console.work_item", item_id=item_id))
    except (TwilioException, OSError) as exc:
        log.warning("call back for work item %d failed: %s", item_id, type(exc).__name__)
        flash("Twilio could not be reached; try again in a moment.", "error")
        return redirect(url_for("console.work_item", item_id=item_id))
    attempts, now = item.attempts + 1, utcnow()
    console.update_work_item(s, item_id, attempts=attempts, last_attempt_at=now, outbound_sid=outbound.sid,
                             history=[*item.history, {"at": now.isoformat(), "by": current_user.username,
                                                      "event": "called", "call": outbound.sid}])
    auth.audited(s, "work.call", f"work:{item_id}", call=outbound.sid, attempt=attempts)
    s.commit()
    flash("Calling: your phone rings first, then the citizen. Record the outcome when you are done.", "info")
    return redirect(url_for("console.work_item", item_id=item_id))


@bp.post("/work/<int:item_id>/outcome")
@auth.requires("agent")
def work_outcome(item_id: int) -> Any:
    s = db.session()
    item, _message, _call = _item(item_id)
    form = OutcomeForm()
    if item.status != "claimed" or item.claimed_by != current_user.username or not form.validate_on_submit():
        flash("Claim the item (and choose an outcome) before recording one.", "error")
        return redirect(url_for("console.work_item", item_id=item_id))
    outcome, now = form.outcome.data, utcnow()
    attempts = max(item.attempts, 1)   # dialled by hand rather than from the console: still an attempt
    changes: dict[str, Any] = {"attempts": attempts, "last_outcome": outcome, "last_attempt_at": now}
    if outcome in FINAL:
        changes["status"] = "done"
    elif attempts >= MAX_ATTEMPTS:
        changes["status"] = "gave_up"
    else:
        changes.update(status="open", claimed_by=None, claimed_at=None,
                       due_at=now + RETRY_DELAYS[min(max(attempts - 1, 0), len(RETRY_DELAYS) - 1)])
    changes["history"] = [*item.history, {"at": now.isoformat(), "by": current_user.username, "event": outcome,
                                          "note": form.note.data or ""}]
    console.update_work_item(s, item_id, **changes)
    auth.audited(s, "work.outcome", f"work:{item_id}", outcome=outcome, status=changes["status"], attempts=attempts)
    s.commit()
    flash({"done": "Done: removed from the list.", "gave_up": f"Given up after {attempts} attempts.",
           "open": f"Back on the list, due again at {changes.get('due_at', now):%H:%M} UTC."}[changes["status"]], "info")
    return redirect(url_for("console.work_list"))
