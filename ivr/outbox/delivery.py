"""Delivery adapters: send one outbox row and say how it went (sent, retry later, or give up).

    outcome = Deliverer(config).deliver(row)

An adapter never raises for a failed delivery; it classifies it:
- **sent**: the provider accepted it (`provider_id`: Twilio's Message SID, the CRM's request id …);
- **retry**: worth trying again later — the provider is down, slow, rate-limiting (429), failing
  (5xx), or this deployment is not configured yet (no credentials: configure, and the retries deliver);
- **dead**: trying again cannot help — Twilio refused the number (21610 the citizen texted STOP,
  21211 invalid number …), a webhook or Open311 server answered 4xx (bad request, bad api_key).

The JSON webhook is signed (HMAC-SHA256, see `sign_webhook` and docs/channels.md for how a
receiver checks it) and carries `Idempotency-Key`, so a receiver can drop the rare repeat after
a worker crash; e-mails carry a Message-ID derived from the same key for the same reason.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Mapping

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from ivr.store.outbox import Row
from ivr.telephony.rest import NotConfigured, rest_client

HTTP_TIMEOUT_S = 10.0
#: ivr.web.outbox's route for Twilio's StatusCallback (the web layer is not imported here).
STATUS_CALLBACK_PATH = "/outbox/sms-status"
SIGNATURE_HEADER = "X-IVR-Signature"
TIMESTAMP_HEADER = "X-IVR-Timestamp"
#: HTTP answers worth retrying: timeouts, rate limits, server trouble.
_RETRY_STATUSES = {408, 425, 429}
#: Twilio answers about *our* account, not the message: retried, so fixing the account delivers.
_TWILIO_ACCOUNT_STATUSES = {401, 403}


@dataclass(frozen=True)
class Outcome:
    result: str                    # "sent" | "retry" | "dead"
    provider_id: str | None = None
    error: str = ""

    @classmethod
    def sent(cls, provider_id: str | None) -> "Outcome":
        return cls("sent", provider_id)

    @classmethod
    def retry(cls, error: str) -> "Outcome":
        return cls("retry", None, error)

    @classmethod
    def dead(cls, error: str) -> "Outcome":
        return cls("dead", None, error)


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    """The X-IVR-Signature value: v1=hex(HMAC-SHA256(secret, "<timestamp>.<body>"))."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_webhook(secret: str, timestamp_header: str, signature_header: str, body: bytes, *,
                   now: float | None = None, tolerance_s: int = 300) -> bool:
    """What a receiver does (Python): recompute, compare in constant time, refuse stale timestamps."""
    try:
        timestamp = int(timestamp_header)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign_webhook(secret, timestamp, body), signature_header or "")


def _setting(config: Mapping[str, Any], name: str | None) -> str:
    """A secret named by the rules: the app's config (IVR_* from the environment), else os.environ."""
    if not name:
        return ""
    return str(config.get(name) or os.environ.get(name) or "")


def _http_outcome(status: int, text: str, what: str) -> Outcome:
    if 200 <= status < 300:
        return Outcome.sent(None)
    detail = f"{what} answered HTTP {status}: {text.strip()[:300]}"
    if status >= 500 or status in _RETRY_STATUSES:
        return Outcome.retry(detail)
    return Outcome.dead(detail)


class Deliverer:
    """Sends rows with one deployment's settings; keeps one Twilio client and HTTP session."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self._twilio: Any = None
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def deliver(self, row: Row) -> Outcome:
        adapter = {"sms": self.sms, "email": self.email, "webhook": self.webhook, "open311": self.open311}.get(row.kind)
        if adapter is None:
            return Outcome.dead(f"unknown kind {row.kind!r}")
        return adapter(row)

    # --- Twilio SMS ------------------------------------------------------------------------------------
    def sms(self, row: Row) -> Outcome:
        sender = row.payload.get("from") or self.config.get("IVR_SMS_FROM") or ""
        service = self.config.get("IVR_MESSAGING_SERVICE_SID") or ""
        if not sender and not service:
            return Outcome.retry("no sender: set IVR_SMS_FROM (the city's number) or IVR_MESSAGING_SERVICE_SID")
        try:
            if self._twilio is None:
                self._twilio = rest_client(self.config)
            options: dict[str, Any] = {"to": row.target, "body": row.payload.get("body", "")}
            if service:
                options["messaging_service_sid"] = service
            else:
                options["from_"] = sender
            callback = self._status_callback()
            if callback:
                options["status_callback"] = callback
            message = self._twilio.messages.create(**options)
        except NotConfigured as exc:
            return Outcome.retry(f"Twilio not configured: {exc}")
        except TwilioRestException as exc:
            detail = f"Twilio {exc.status} error {exc.code}: {exc.msg}"
            if exc.status >= 500 or exc.status in _RETRY_STATUSES or exc.status in _TWILIO_ACCOUNT_STATUSES:
                return Outcome.retry(detail)
            return Outcome.dead(detail)       # 21610 unsubscribed, 21211 invalid number, 21614 …
        except (TwilioException, requests.RequestException, OSError) as exc:
            return Outcome.retry(f"Twilio unreachable: {type(exc).__name__}: {str(exc)[:200]}")
        return Outcome.sent(message.sid)

    def _status_callback(self) -> str:
        """Where Twilio reports delivery: IVR_SMS_STATUS_CALLBACK, else our /outbox/sms-status."""
        explicit = str(self.config.get("IVR_SMS_STATUS_CALLBACK") or "")
        if explicit or not self.config.get("IVR_PUBLIC_URL"):
            return explicit
        return str(self.config["IVR_PUBLIC_URL"]).rstrip("/") + STATUS_CALLBACK_PATH

    # --- e-mail (SMTP) ---------------------------------------------------------------------------------
    def email(self, row: Row) -> Outcome:
        host = self.config.get("IVR_SMTP_HOST") or ""
        if not host:
            return Outcome.retry("SMTP not configured: set IVR_SMTP_HOST")
        message = EmailMessage()
        message["From"] = self.config.get("IVR_SMTP_FROM") or "city-line@localhost"
        message["To"] = row.target
        message["Subject"] = row.payload.get("subject", "")
        message["Date"] = formatdate(localtime=False)
        # Same key, same Message-ID: a repeat after a worker crash is recognisably the same mail.
        domain = message["From"].rpartition("@")[2] or "localhost"
        message["Message-ID"] = f"<{hashlib.sha256(row.key.encode()).hexdigest()[:32]}@{domain}>"
        message.set_content(row.payload.get("text", ""))
        port = int(self.config.get("IVR_SMTP_PORT") or 25)
        timeout = float(self.config.get("IVR_SMTP_TIMEOUT_S") or HTTP_TIMEOUT_S)
        try:
            if _truthy(self.config.get("IVR_SMTP_SSL")):
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            with smtp:
                if _truthy(self.config.get("IVR_SMTP_STARTTLS")):
                    smtp.starttls(context=ssl.create_default_context())
                if self.config.get("IVR_SMTP_USER"):
                    smtp.login(self.config["IVR_SMTP_USER"], self.config.get("IVR_SMTP_PASSWORD") or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            return _smtp_outcome(code, reason)
        except smtplib.SMTPResponseException as exc:
            return _smtp_outcome(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome.retry(f"SMTP {host}:{port} unreachable: {type(exc).__name__}: {str(exc)[:200]}")
        return Outcome.sent(message["Message-ID"])

    # --- signed JSON webhook ---------------------------------------------------------------------------
    def webhook(self, row: Row) -> Outcome:
        secret = _setting(self.config, row.payload.get("secret_env")) or str(self.config.get("IVR_WEBHOOK_SECRET") or "")
        if not secret:
            name = row.payload.get("secret_env") or "IVR_WEBHOOK_SECRET"
            return Outcome.retry(f"no signing secret: set {name}")
        body = json.dumps(row.payload.get("body", {}), ensure_ascii=False, sort_keys=True).encode()
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json; charset=utf-8", TIMESTAMP_HEADER: str(timestamp),
                   SIGNATURE_HEADER: sign_webhook(secret, timestamp, body), "Idempotency-Key": row.key,
                   "User-Agent": "city-ivr-outbox"}
        try:
            response = self._http.post(row.target, data=body, headers=headers, timeout=HTTP_TIMEOUT_S,
                                       allow_redirects=False)
        except requests.RequestException as exc:
            return Outcome.retry(f"webhook unreachable: {type(exc).__name__}")
        outcome = _http_outcome(response.status_code, response.text, "webhook")
        return Outcome.sent(response.headers.get("X-Request-Id")) if outcome.result == "sent" else outcome

    # --- upstream Open311 (GeoReport v2 POST requests) -------------------------------------------------
    def open311(self, row: Row) -> Outcome:
        form = dict(row.payload.get("form", {}))
        key_env = row.payload.get("api_key_env")
        api_key = _setting(self.config, key_env)
        if not api_key:
            return Outcome.retry(f"no Open311 api_key: set {key_env or 'api_key_env in the rules'}")
        form["api_key"] = api_key
        url = row.target.rstrip("/") + "/requests.json"
        try:
            response = self._http.post(url, data=form, timeout=HTTP_TIMEOUT_S, allow_redirects=False)
        except requests.RequestException as exc:
            return Outcome.retry(f"Open311 endpoint unreachable: {type(exc).__name__}")
        outcome = _http_outcome(response.status_code, response.text, "Open311 endpoint")
        if outcome.result != "sent":
            return outcome
        return Outcome.sent(_open311_id(response))


def _open311_id(response: requests.Response) -> str | None:
    """service_request_id (or token) from a GeoReport v2 POST answer: a JSON list of one object."""
    try:
        answer = response.json()
    except ValueError:
        return None
    first = answer[0] if isinstance(answer, list) and answer else answer
    if not isinstance(first, dict):
        return None
    if first.get("service_request_id"):
        return str(first["service_request_id"])
    return f"token:{first['token']}" if first.get("token") else None


def _smtp_outcome(code: int, reason: Any) -> Outcome:
    text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    detail = f"SMTP {code}: {text[:300]}"
    return Outcome.dead(detail) if 500 <= code < 600 else Outcome.retry(detail)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}
