"""The web console under /console: agents (queue, calls, callbacks), supervisors (+ reports),
admins (+ rules, prompts and users). Server-rendered Jinja with small progressive scripts.

`init_app(app)`: sessions (Flask-Login), CSRF (Flask-WTF) checked on every console POST, secure
cookies outside tests, the blueprint, and the hook that keeps this instance's rules and prompts
at the newest version saved by any instance (see `live`).
"""
from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin

from ivr.secret import secret_key
from ivr.web.console import auth, live
from ivr.web.console import editor, reports, service_requests, views, work  # noqa: F401 — each registers its pages on bp
from ivr.web.console.blueprint import bp, csrf

__all__ = ["init_app", "bp"]


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus their cost on requests that carry no session cookie.

    Every request opens a session, and the stock interface builds a signing serializer (key
    derivation set-up) for it before even looking for the cookie, then reads six cookie settings
    when saving it: about 0.1 ms of each Twilio webhook, which never carries a session cookie.
    Here a request without the cookie gets an empty session straight away, and an empty session
    nobody changed is saved as the stock one would save it: no cookie, `Vary: Cookie` if read.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # No Cookie header at all (every Twilio webhook) is known without parsing one.
        if app.secret_key and (not request.environ.get("HTTP_COOKIE")
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified:
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    """Register the console with `app`."""
    secret_key(app)   # sessions are signed with it (ivr/secret.py)
    app.session_interface = CookieSessions()
    # Production cookies travel only over HTTPS and never reach page scripts; tests and
    # `make run` on http://127.0.0.1 would otherwise never get a session.
    insecure = bool(app.config.get("TESTING")) or str(app.config.get("IVR_CONSOLE_INSECURE_COOKIES", "")).lower() in {"1", "true", "yes"}
    app.config["SESSION_COOKIE_SECURE"] = not insecure
    app.config["REMEMBER_COOKIE_SECURE"] = not insecure
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["REMEMBER_COOKIE_HTTPONLY"] = True
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    # CSRF is checked by the console blueprint itself (views.before_request), not app-wide:
    # Twilio's signed webhooks cannot carry a CSRF token.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 8 * 3600)   # an agent's shift
    csrf.init_app(app)
    auth.init_app(app)
    app.register_blueprint(bp)
    live.init_app(app)
