"""`@twilio_signed`: every Twilio webhook proves it came from Twilio, or gets 403.

The signature covers the URL Twilio requested plus the POST parameters, so we rebuild that
URL: `IVR_PUBLIC_URL` + path + query when configured (behind a proxy or tunnel our own host
name is not what Twilio called); else, only if `IVR_TRUST_FORWARDED`, the proxy's
X-Forwarded-Proto/Host; else the request's own URL. There is deliberately no switch that
accepts unsigned requests: without `TWILIO_AUTH_TOKEN` every webhook is refused.
"""
from __future__ import annotations

import functools
import hmac
import logging
from typing import Any, Callable, TypeVar, cast

from flask import Request, abort, current_app, request
from twilio.request_validator import RequestValidator

try:  # twilio ≥ 9.x names the algorithm in a header; older versions only know HMAC-SHA1.
    from twilio.request_validator import get_signature_algorithm
except ImportError:  # pragma: no cover - depends on the installed twilio version
    get_signature_algorithm = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def public_url(req: Request) -> str:
    """The absolute URL Twilio called for `req` (see the module docstring for the order)."""
    base = (current_app.config.get("IVR_PUBLIC_URL") or "").rstrip("/")
    path_and_query = req.full_path if req.query_string else req.path
    if base:
        return base + path_and_query
    if current_app.config.get("IVR_TRUST_FORWARDED"):
        proto = req.headers.get("X-Forwarded-Proto", req.scheme).split(",")[0].strip()
        host = req.headers.get("X-Forwarded-Host", req.host).split(",")[0].strip()
        return f"{proto}://{host}{path_and_query}"
    return req.url


def signature_problem(req: Request) -> str | None:
    """Why `req` is not a genuine Twilio request, or None when its signature is valid."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN") or ""
    if not token:
        return "TWILIO_AUTH_TOKEN is not set; every webhook is refused until it is"
    signature = req.headers.get("X-Twilio-Signature", "")
    if not signature:
        return "no X-Twilio-Signature header"
    # The form MultiDict as it is: RequestValidator signs every value of a repeated key.
    params: Any = req.form if req.method == "POST" else {}
    algorithm = None
    if get_signature_algorithm is not None:
        algorithm = get_signature_algorithm(req.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    url = public_url(req)
    if _signs_exactly(token, url, params, signature, algorithm):
        return None
    validator = RequestValidator(token)
    kwargs = {"algorithm": algorithm} if algorithm else {}
    # The library also tries the URL with and without the default port (Twilio is not
    # consistent about it) and rejects unknown algorithms with a warning.
    if not validator.validate(url, params, signature, **kwargs):
        return f"signature does not match {req.method} {req.path}"
    return None


class _FormLists(dict):  # type: ignore[type-arg]
    """A form as {name: [values]}, with the `getall` that `RequestValidator.get_values` asks for
    first. Handed a werkzeug MultiDict, which has no `getall`, the library raises and catches an
    AttributeError for every name before trying `getlist`: 20 us for Twilio's ~15 parameters."""

    getall = dict.__getitem__


def _signs_exactly(token: str, url: str, params: Any, signature: str, algorithm: str | None) -> bool:
    """True when `signature` is the HMAC of exactly `url` + `params` — the usual case, checked
    with the library's one HMAC instead of `validate`'s two (and its URL re-parsing)."""
    lists = _FormLists(params.lists() if hasattr(params, "lists") else
                       ((name, [value]) for name, value in params.items()))
    try:
        expected = RequestValidator(token).compute_signature(url, lists, algorithm)
    except ValueError:   # an algorithm this twilio version does not know: `validate` logs it
        return False
    # As bytes: compare_digest refuses a str with non-ASCII characters (a forged header's).
    return hmac.compare_digest(expected.encode("utf-8"), signature.encode("utf-8"))


def is_twilio_request(req: Request) -> bool:
    """True when `req` carries a valid Twilio signature (for the websocket upgrade too)."""
    return signature_problem(req) is None


def twilio_signed(view: F) -> F:
    """Refuse (403, nothing written) any request without a valid Twilio signature; a body that is
    not form data gets 415 first, since it cannot be a Twilio webhook."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The request itself, not the `request` proxy: each attribute read through the proxy
        # looks the request up again (~0.5 us, and the check reads a dozen): 7 us per webhook.
        req = request._get_current_object()  # type: ignore[attr-defined]
        if req.method == "POST" and req.mimetype not in FORM_TYPES and req.get_data(cache=True):
            abort(415, description=f"Unsupported content type {req.mimetype or 'none'!r}: "
                                   "Twilio webhooks post application/x-www-form-urlencoded")
        problem = signature_problem(req)
        if problem:
            log.warning("refused %s %s: %s", req.method, req.path, problem)
            # The reason stays in our log; the caller of a forged request learns nothing from it.
            abort(403, description="Forbidden: this URL only answers requests signed by Twilio")
        return view(*args, **kwargs)

    return cast(F, wrapper)
