"""GET /prompts/audio/<name>.wav — the rendered prompts Twilio fetches for <Play>.

Names are content hashes (see ivr.prompts_audio), so a file never changes: it is served
as immutable with an ETag. Only names matching the hash pattern are looked up, which
rules out path traversal. No signature check: prompts are public words, and Twilio sends
none of its webhook parameters when it fetches a <Play> URL. Twilio accepts audio/wav for
<Play> and obeys standard HTTP caching headers (twilio.com/docs/voice/twiml/play).
"""
from __future__ import annotations

from flask import Blueprint, Flask, abort, current_app, send_file
from flask.typing import ResponseReturnValue

from ivr.prompts_audio import NAME_PATTERN, PromptAudio

bp = Blueprint("prompt_audio", __name__)

#: One year: the URL changes whenever the words, voice or rate change.
MAX_AGE_S = 365 * 24 * 3600


@bp.get("/prompts/audio/<string:name>.wav")
def audio(name: str) -> ResponseReturnValue:
    """The WAV file of a rendered prompt (audio/wav, cacheable), or 404."""
    if not NAME_PATTERN.fullmatch(name):
        abort(404)
    store: PromptAudio = current_app.extensions["ivr.prompt_audio"]
    path = store.path(name)
    if not path.is_file():
        abort(404)
    # The name is a hash of the content, so it is the strongest possible ETag.
    response = send_file(path, mimetype="audio/wav", conditional=True, etag=name, max_age=MAX_AGE_S)
    response.cache_control.public = True
    response.cache_control.immutable = True
    return response


def init_app(app: Flask) -> None:
    """Register the blueprint (called from ivr.prompts.init_app)."""
    app.register_blueprint(bp)
