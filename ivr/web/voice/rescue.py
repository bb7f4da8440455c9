"""The last line of defence: a webhook that fails still gets the caller to a person.

`safe_webhook` wraps every voice view. Intentional HTTP errors (403 forged, 400 malformed)
pass through; any other exception is logged with the caller's number masked and answered
with TwiML that dials the operator line — from the last good rules, else from
`IVR_OPERATOR_FALLBACK` — so Twilio never sees a 5xx.
"""
from __future__ import annotations

import functools
import logging
import traceback
from typing import Any, Callable, TypeVar, cast

from flask import current_app, g, request
from werkzeug.exceptions import HTTPException

from ivr import metrics, prompts
from ivr.lang import locale
from ivr import rules_source
from ivr.store.privacy import mask_number
from ivr.telephony.twiml import render_to_human
from ivr.web.voice.conversation import xml

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
# Used only when even the prompt catalogue is unusable; the catalogue's texts are preferred.
_LAST_RESORT = {"line": "Sorry, something went wrong. Connecting you to a person.",
                "none": "Sorry, something went wrong on our side. Please call again in a few minutes."}


def operator_line() -> str | None:
    """The operator desk's line from the last good rules, else the configured fallback number."""
    try:
        current = rules_source.current_rules()
        return current.departments[current.operator].line
    except Exception:  # noqa: BLE001 - rules unusable: the configured number is the fallback
        log.error("no operator line from the rules; using IVR_OPERATOR_FALLBACK")
        return current_app.config.get("IVR_OPERATOR_FALLBACK") or None


def _words(key: str, language: str, fallback: str) -> tuple[str, str]:
    """The prompt's words and the language they are in (the English last resort if need be)."""
    try:
        return prompts.text(key, language), language
    except Exception:  # noqa: BLE001 - broken catalogue must not stop the rescue answer
        return fallback, "en"


def _say_language(language: str) -> str:
    """Twilio's <Say> voice for `language` (es → es-MX), as every other prompt uses."""
    try:
        return prompts.say_language(language)
    except Exception:  # noqa: BLE001 - no app or catalogue: the built-in language file's
        return locale(language, "say") or "en-US"


def to_human_body(language: str = "en") -> str:
    """TwiML (as text) that apologises, in the caller's language and voice, and dials the operator."""
    line = operator_line()
    words, spoken_in = _words("operator", language, _LAST_RESORT["line"]) if line else \
        _words("error", language, _LAST_RESORT["none"])
    return str(render_to_human(line, words, _say_language(spoken_in)))


def safe_webhook(view: F | None = None, *, rescue: Callable[[], str] | None = None) -> Any:
    """Answer valid TwiML whenever `view` raises (never a 5xx).

    The default rescue dials the operator; edges where <Dial> is not allowed (the agent's
    whisper, the queue's hold music) pass their own `rescue` returning TwiML text.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure must still answer the caller
                metrics.RESCUES.labels(endpoint=request.url_rule.rule if request.url_rule else "?").inc()
                # Only the message's first line and the frames: database errors append the SQL
                # parameters (phone numbers) on later lines.
                log.error("webhook %s failed for call %s from %s: %s: %s\n%s", request.path,
                          request.values.get("CallSid", "?"), mask_number(request.values.get("From")),
                          type(exc).__name__, (str(exc).splitlines() or [""])[0][:300],
                          "".join(traceback.format_tb(exc.__traceback__)))
                _discard_session()
                return xml(rescue() if rescue else to_human_body(g.get("ivr_language", "en")))

        return cast(F, wrapper)

    return decorate(view) if view is not None else decorate


def _discard_session() -> None:
    """Roll back whatever the failed request half-wrote, so nothing partial is committed later."""
    s = g.pop("ivr_db_session", None)
    if s is None:
        return
    try:
        s.rollback()
        s.close()
    except Exception:  # noqa: BLE001 - a dead database cannot roll back; closing is best effort
        log.warning("could not roll back the failed request's session")
