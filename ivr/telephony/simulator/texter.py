"""A citizen texting the city number, as Twilio's Messaging webhook delivers each text."""
from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from typing import Mapping

from twilio.request_validator import RequestValidator

from ivr.telephony.simulator.transport import ACCOUNT_SID, Reply, SimulatorError, Transport

SMS_INCOMING = "/sms/incoming"   # the phone number's "a message comes in" webhook


class SimulatedTexter:
    """A citizen texting the city number, as Twilio's Messaging webhook delivers each text.

    Posts the signed form Twilio posts (MessageSid, From, To, Body, NumMedia …) to `/sms/incoming`
    and reads the reply's <Message> bodies. `resend()` posts the last text again with the same
    MessageSid, as Twilio does when our answer was late.

        texter = SimulatedTexter(FlaskTransport(app.test_client()), token=..., public_url=...)
        assert "Case" in texter.text("pothole at 120 Main St")
    """

    def __init__(self, transport: Transport, *, token: str, public_url: str,
                 from_: str = "+13125550142", to: str = "+13125550311") -> None:
        self.transport = transport
        self.validator = RequestValidator(token)
        self.url = public_url.rstrip("/") + SMS_INCOMING
        self.from_, self.to = from_, to
        self.last: Reply | None = None
        self.last_params: dict[str, str] = {}

    def params(self, body: str, *, media: int = 0, sid: str | None = None) -> dict[str, str]:
        params = {"MessageSid": sid or "SM" + secrets.token_hex(16), "AccountSid": ACCOUNT_SID,
                  "From": self.from_, "To": self.to, "Body": body, "NumMedia": str(media), "NumSegments": "1",
                  "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        for n in range(media):
            params[f"MediaUrl{n}"] = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/media/{n}"
            params[f"MediaContentType{n}"] = "image/jpeg"
        return params

    def post(self, params: Mapping[str, str], *, signature: str | None = None) -> Reply:
        """POST `params` signed (or with `signature`, e.g. a forged one)."""
        self.last_params = dict(params)
        sign = signature if signature is not None else self.validator.compute_signature(self.url, dict(params))
        self.last = self.transport.request("POST", self.url, params, {"X-Twilio-Signature": sign})
        return self.last

    def text(self, body: str, *, media: int = 0, sid: str | None = None) -> str:
        """Send a text; the reply's text ("" when the line answered nothing)."""
        return self.reply_text(self.post(self.params(body, media=media, sid=sid)))

    def resend(self) -> str:
        """Twilio's retry of the last text (same MessageSid)."""
        return self.reply_text(self.post(self.last_params))

    @staticmethod
    def reply_text(reply: Reply) -> str:
        """The <Message> bodies of a TwiML answer, joined (SimulatorError on an error or invalid TwiML)."""
        if reply.status_code != 200 or reply.mimetype not in ("text/xml", "application/xml"):
            raise SimulatorError(f"/sms/incoming answered {reply.status_code} {reply.mimetype}")
        try:
            doc = ET.fromstring(reply.data)
        except ET.ParseError:
            raise SimulatorError(f"/sms/incoming answered invalid TwiML: {reply.data[:200]!r}") from None
        if doc.tag != "Response":
            raise SimulatorError(f"/sms/incoming answered <{doc.tag}>, not <Response>")
        return " ".join((m.findtext("Body") or m.text or "").strip() for m in doc.iter("Message")).strip()
