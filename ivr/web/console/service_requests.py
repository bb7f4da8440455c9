"""Service requests in the console: the list (filters), a request's page, acknowledge or close with a note.

The same store calls as `ivr requests` (ivr.store.service_requests); contacts are masked on every
page (agents reach citizens through callbacks, where a claim shows the number). Every change is
written with the agent's name and the note, and audited; a citizen who agreed to texts is told
when their request is acknowledged or closed (ivr.service_updates).
"""
from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ivr import rules_source
from ivr.routing.services import STATUSES
from ivr.service_updates import tell_citizen
from ivr.store import db, service_requests
from ivr.store.privacy import mask_email
from ivr.web.console import auth
from ivr.web.console.blueprint import bp
from ivr.web.console.forms import StatusForm

LIST_LIMIT = 200
#: What each button does, in the order the page offers them.
CHANGES = {"acknowledged": "Acknowledge", "closed": "Close", "open": "Reopen"}


@bp.app_template_filter("masked_email")
def _masked_email(address: str | None) -> str:
    return mask_email(address) or "–"


@bp.get("/requests")
@auth.requires("agent")
def requests_list() -> Any:
    args = request.args
    status = args.get("status", "")
    status = status if status in STATUSES else ""
    department = args.get("department", "")[:64]
    found = service_requests.search(db.session(), status=status or None, department=department or None,
                                    limit=LIST_LIMIT)
    return render_template("console/requests.html", rows=found, args=args, statuses=STATUSES, limit=LIST_LIMIT)


@bp.get("/requests/<case>")
@auth.requires("agent")
def request_page(case: str) -> Any:
    s = db.session()
    found = service_requests.by_case(s, case[:32])
    if found is None:
        abort(404)
    return render_template("console/request.html", r=found, history=service_requests.history(s, found.case_number),
                           form=StatusForm(), changes={k: v for k, v in CHANGES.items() if k != found.status})


@bp.post("/requests/<case>/status")
@auth.requires("agent")
def request_status(case: str) -> Any:
    s = db.session()
    form = StatusForm()
    if not form.validate_on_submit():
        flash("Choose what to do (acknowledge, close or reopen); a note is at most 1000 characters.", "error")
        return redirect(url_for("console.request_page", case=case))
    try:
        changed = service_requests.set_status(s, case[:32], form.status.data, form.note.data or "",
                                              current_user.username)
    except service_requests.RequestError:
        abort(404)
    texted = tell_citizen(s, changed, rules_source.current_rules(), current_app.config["IVR_PROMPTS_DIR"])
    auth.audited(s, "requests.status", f"request:{changed.case_number}", status=changed.status, texted=texted)
    s.commit()
    flash(f"Case {changed.case_number}: {changed.status}." + (" The citizen is sent a text." if texted else ""), "info")
    return redirect(url_for("console.request_page", case=changed.case_number))
