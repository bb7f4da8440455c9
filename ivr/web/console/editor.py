"""The admins' editor for routing_rules.yaml and prompts/<lang>.yaml, versions and rollback,
a "try it" box, and the users page.

A save runs the same check as `ivr check` (ivr.rules_source.check_files) on the edited text in a
scratch copy; any problem is shown as FILE:LINE beside the text and nothing is changed. A good
edit becomes a new version in the database (who, when, diff) and is served at once by this
instance and within about a second by every other (see `live`).
"""
from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ivr import prompts as prompt_catalogue
from ivr import rules_source
from ivr.rules_source import check_files
from ivr.routing.hours import city_timezone
from ivr.routing.preview import Router
from ivr.routing.problems import Problem
from ivr.speech.transcribe import route_audio   # the same path as `ivr route --audio`
from ivr.store import audit, console, db  # noqa: F401 — audit.recent for the users page
from ivr.store.console import ROLES, ContentVersion, User
from ivr.web.console import auth, live
from ivr.web.console.blueprint import bp
from ivr.web.console.forms import ActionForm, PromptsForm, RulesForm, TryForm

MAX_TEXT = 2_000_000
MAX_WAV = 5_000_000
#: Sample values for the play button: every placeholder a prompt may use reads naturally.
SAMPLE_VALUES = {"department": "Streets and Roads", "description": "a pothole", "hours": "weekdays 8 AM to 5 PM",
                 "minutes": 4, "position": 2, "number": "311", "holiday": "Thanksgiving", "name": "Parking Services",
                 "options": "press 1 for roads", "digit": 1, "label": "roads", "closure": "staff training"}


def _problems_of(found: list[Problem], scratch: Path, kind: str) -> list[Problem]:
    """Problems with the scratch copy's paths renamed to what the admin edits (routing_rules.yaml …)."""
    renamed = []
    for problem in found:
        path = problem.path
        if path.startswith(str(scratch)):
            name = Path(path).name
            path = "routing_rules.yaml" if name == "routing_rules.yaml" else f"prompts/{name}"
        renamed.append(Problem(path, problem.line, problem.message))
    return renamed


def check_text(kind: str, text: str) -> list[Problem]:
    """`ivr check` on the live files with `kind` replaced by `text`."""
    app = current_app
    with tempfile.TemporaryDirectory(prefix="ivr-edit-") as tmp:
        scratch = Path(tmp)
        prompts_dir = scratch / "prompts"
        shutil.copytree(app.config["IVR_PROMPTS_DIR"], prompts_dir)
        rules_path = scratch / "routing_rules.yaml"
        if kind == live.RULES:
            rules_path.write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(app.config["IVR_RULES_PATH"], rules_path)
            (prompts_dir / f"{kind.split(':', 1)[1]}.yaml").write_text(text, encoding="utf-8")
        _rules, problems = check_files(str(rules_path), str(prompts_dir))
        return _problems_of(problems, scratch, kind)


def _text_from_form(field: str) -> str:
    text = (request.form.get(field) or "").replace("\r\n", "\n")
    if len(text) > MAX_TEXT:
        abort(413)
    return text


def _try_result(form: TryForm) -> dict[str, Any] | None:
    """What the line would do now with the sentence (or WAV) in the "try it" box."""
    if not form.is_submitted():
        return None
    rules = rules_source.current_rules()
    router = Router(rules, rules_source.current_classifier(), city_timezone(rules))
    language = form.language.data if form.language.data in rules.languages else rules.default_language
    clock = current_app.config.get("IVR_CLOCK")   # tests and demos visit other hours, as the line does
    now = clock().astimezone(router.timezone) if callable(clock) else datetime.now(router.timezone)
    upload = request.files.get("try-audio")
    try:
        if upload and upload.filename:
            data = upload.read(MAX_WAV + 1)
            if len(data) > MAX_WAV:
                return {"error": "the recording is larger than 5 MB; try a shorter one"}
            with tempfile.NamedTemporaryFile(suffix=".wav") as handle:
                handle.write(data)
                handle.flush()
                return route_audio(router, Path(handle.name), language, now)
        if not (form.sentence.data or "").strip():
            return {"error": "type a sentence or choose a WAV recording"}
        return router.route(form.sentence.data.strip(), language, now)
    except (ValueError, OSError, RuntimeError) as exc:
        return {"error": str(exc)}


def _editor(kind: str, form: Any, problems: list[Problem], try_form: TryForm, result: dict[str, Any] | None,
            text: str) -> Any:
    s = db.session()
    template = "console/rules.html" if kind == live.RULES else "console/prompts.html"
    languages = sorted(p.stem for p in Path(current_app.config["IVR_PROMPTS_DIR"]).glob("*.yaml"))
    catalogue = prompt_catalogue.catalogue_now().get(kind.split(":", 1)[1], {}) if kind != live.RULES else {}
    return render_template(template, form=form, problems=problems, text=text, try_form=try_form, result=result,
                           versions=live.versions(s, kind), kind=kind, name=live.display_name(kind),
                           action=ActionForm(), languages=languages, catalogue=catalogue,
                           try_languages=rules_source.current_rules().languages,
                           status=422 if problems else 200), (422 if problems else 200)


def _try_form() -> TryForm:
    form = TryForm(prefix="try")
    return form


@bp.route("/rules", methods=["GET", "POST"])
@auth.requires("admin")
def rules() -> Any:
    form = RulesForm()
    path = Path(current_app.config["IVR_RULES_PATH"])
    if request.method == "POST":
        text = _text_from_form("rules")
        problems = check_text(live.RULES, text) if form.validate_on_submit() else \
            [Problem("routing_rules.yaml", 0, "the rules are empty; paste the whole file")]
        if problems:
            return _editor(live.RULES, form, problems, _try_form(), None, text)
        if text == path.read_text(encoding="utf-8"):
            flash("No change: the text is what the line is serving.", "info")
            return redirect(url_for("console.rules"))
        version = live.save(db.session(), live.RULES, text, current_user.username, form.note.data or "")
        flash(f"Saved as version {version}; the line is using it now.", "info")
        return redirect(url_for("console.rules"))
    return _editor(live.RULES, form, [], _try_form(), None, path.read_text(encoding="utf-8"))


@bp.post("/rules/try")
@auth.requires("admin")
def rules_try() -> Any:
    try_form = _try_form()
    result = _try_result(try_form)
    text = Path(current_app.config["IVR_RULES_PATH"]).read_text(encoding="utf-8")
    return _editor(live.RULES, RulesForm(formdata=None), [], try_form, result, text)


@bp.get("/versions/<int:version_id>")
@auth.requires("admin")
def version(version_id: int) -> Any:
    item = db.session().get(ContentVersion, version_id)
    if item is None:
        abort(404)
    return render_template("console/version.html", v=item, name=live.display_name(item.kind), action=ActionForm())


@bp.post("/versions/<int:version_id>/rollback")
@auth.requires("admin")
def rollback(version_id: int) -> Any:
    s = db.session()
    item = s.get(ContentVersion, version_id)
    if item is None:
        abort(404)
    back = url_for("console.rules") if item.kind == live.RULES else url_for("console.prompts", language=item.kind.split(":", 1)[1])
    problems = check_text(item.kind, item.text)
    if problems:
        flash(f"Version {version_id} no longer passes the check ({problems[0]}); nothing was changed.", "error")
        return redirect(back)
    saved = live.save(s, item.kind, item.text, current_user.username, f"rollback to version {version_id}")
    auth.audited(s, "rules.rollback" if item.kind == live.RULES else "prompts.rollback", f"{item.kind}@{saved}",
                 to_version=version_id)
    s.commit()
    flash(f"Rolled back: version {version_id} is serving again (saved as version {saved}).", "info")
    return redirect(back)


@bp.route("/prompts/<language>", methods=["GET", "POST"])
@auth.requires("admin")
def prompts(language: str) -> Any:
    kind = live.prompts_kind(language)
    path = Path(current_app.config["IVR_PROMPTS_DIR"]) / f"{language}.yaml"
    if not language.isalpha() or not path.is_file():
        abort(404)
    form = PromptsForm()
    if request.method == "POST":
        text = _text_from_form("prompts")
        problems = check_text(kind, text) if form.validate_on_submit() else \
            [Problem(f"prompts/{language}.yaml", 0, "the prompts are empty; paste the whole file")]
        if problems:
            return _editor(kind, form, problems, _try_form(), None, text)
        if text == path.read_text(encoding="utf-8"):
            flash("No change: the text is what the line is serving.", "info")
            return redirect(url_for("console.prompts", language=language))
        saved = live.save(db.session(), kind, text, current_user.username, form.note.data or "")
        flash(f"Saved as version {saved}; callers hear it within a second.", "info")
        return redirect(url_for("console.prompts", language=language))
    return _editor(kind, form, [], _try_form(), None, path.read_text(encoding="utf-8"))


@bp.get("/prompts")
@auth.requires("admin")
def prompts_index() -> Any:
    return redirect(url_for("console.prompts", language=rules_source.current_rules().default_language))


@bp.get("/prompts/<language>/play/<key>")
@auth.requires("admin")
def prompt_play(language: str, key: str) -> Any:
    """The prompt rendered as callers hear it (with sample values), or a page saying why not."""
    try:
        entry = prompt_catalogue.prompt(key, language)
    except prompt_catalogue.PromptError:
        abort(404)
    values = {name: SAMPLE_VALUES.get(name, name.replace("_", " ")) for name in entry.placeholders}
    words = prompt_catalogue.text(key, language, **values)
    url = prompt_catalogue.audio_url(words, entry.voice)
    if request.args.get("format") == "json":
        return {"key": key, "words": words, "audio": url}
    if url is None:
        flash(f"No rendered audio for '{key}' (no speech synthesiser here); callers hear Twilio's voice: “{words}”", "error")
        return redirect(url_for("console.prompts", language=language))
    return redirect(url)


@bp.get("/users")
@auth.requires("admin")
def users() -> Any:
    everyone = db.session().scalars(select(User).order_by(User.username)).all()
    return render_template("console/users.html", users=everyone, roles=ROLES, entries=audit.recent(db.session(), 50),
                           action=ActionForm())


@bp.post("/users/<int:user_id>/disable")
@auth.requires("admin")
def user_disable(user_id: int) -> Any:
    s = db.session()
    user = s.get(User, user_id)
    if user is None:
        abort(404)
    if user.id == current_user.id:
        flash("You cannot disable your own account.", "error")
        return redirect(url_for("console.users"))
    console.update_user(s, user.id, disabled=True)
    auth.audited(s, "user.disable", user.username)
    s.commit()
    flash(f"{user.username} is disabled and signed out.", "info")
    return redirect(url_for("console.users"))
