"""A stand-in for Twilio: one phone call that follows our TwiML as Twilio does.

Used by `ivr call` (a person at a terminal), the tests (Flask's test client) and the benchmarks
(many callers over HTTP). It posts the webhooks Twilio posts, with Twilio's parameters and an
`X-Twilio-Signature` made by twilio's own `RequestValidator`, and follows each answer's verbs:
`<Gather>` (speech, keys or silence), `<Redirect>`, `<Connect><Stream>` (a Media Stream: the
caller's audio and keys over a websocket, see `MediaStream`), `<Dial>` (and the agent's whisper
leg), `<Enqueue>` (the hold music's waitUrl, then the queue result), `<Record>` (the recording
status callback, then the action) and `<Hangup>`.

    call = SimulatedCall(FlaskTransport(app.test_client()), token=..., public_url=...)
    call.call()                       # POST /voice/incoming
    call.say("there is a pothole")    # answer the current <Gather> with speech
    assert call.verbs() == ["Say", "Dial"]

Nothing here knows our webhooks beyond `/voice/incoming`, `/voice/status` and `/sms/incoming`, the
URLs an admin configures on the phone number: every other URL comes from the TwiML, as for Twilio.

- `transport`: how requests reach the line (a Flask test client or HTTP) and the `Reply`;
- `call`: `SimulatedCall`, the TwiML follower (signing, every verb, a whole call with `run`);
- `heard`: what the caller hears from a document, as words (`<Say>`, `<Play>`, stream prompts);
- `media`: `MediaStream`, the caller's side of a `<Connect><Stream>`;
- `texter`: `SimulatedTexter`, a citizen texting the line.
"""
from ivr.telephony.simulator.call import SimulatedCall
from ivr.telephony.simulator.media import MediaStream
from ivr.telephony.simulator.texter import SimulatedTexter
from ivr.telephony.simulator.transport import (FlaskTransport, HttpTransport, Reply, SimulatorError, Transport,
                                               Unreachable)

__all__ = ["FlaskTransport", "HttpTransport", "MediaStream", "Reply", "SimulatedCall", "SimulatedTexter",
           "SimulatorError", "Transport", "Unreachable"]
