"""X-Twilio-Signature: validated against the URL Twilio called (public URL, or trusted proxy headers)."""
from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from conftest import TEST_AUTH_TOKEN

SID = "CA" + "7" * 32
PARAMS = {"CallSid": SID, "From": "+13125550123", "To": "+13125550311"}


def signed(url: str, params: dict | None = None, token: str = TEST_AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params or PARAMS)}


@pytest.fixture
def app_config(app_config):
    return {**app_config, "IVR_TTS": "off"}


def post_internal(client, headers, path="/voice/incoming", data=None):
    """What the app sees behind a proxy/tunnel: plain HTTP on an internal address."""
    return client.post(path, data=data or PARAMS, headers=headers, base_url="http://10.0.0.5:8000")


def test_signature_is_checked_against_the_public_url_not_the_internal_one(client):
    assert post_internal(client, signed("https://ivr.example.test/voice/incoming")).status_code == 200
    assert post_internal(client, signed("http://10.0.0.5:8000/voice/incoming")).status_code == 403


def test_query_string_is_part_of_the_signed_url(client):
    assert post_internal(client, signed("https://ivr.example.test/voice/turn?step=ask&n=2"),
                         "/voice/turn?step=ask&n=3").status_code == 403


def test_missing_signature_and_wrong_token_are_refused(client):
    assert post_internal(client, {}).status_code == 403
    assert post_internal(client, signed("https://ivr.example.test/voice/incoming", token="other")).status_code == 403


def test_every_webhook_is_protected(client):
    for path in ("/voice/incoming", "/voice/turn", "/voice/dial-done", "/voice/whisper", "/voice/queue-wait",
                 "/voice/queue-done", "/voice/voicemail-done", "/voice/recording-status", "/voice/status",
                 "/voice/fallback"):
        assert post_internal(client, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, path).status_code == 403, path


@pytest.mark.parametrize("trusted,expected", [(True, 200), (False, 403)])
def test_forwarded_headers_only_when_trusted(app_config, trusted, expected):
    from ivr import create_app

    app = create_app({**app_config, "IVR_PUBLIC_URL": "", "IVR_TRUST_FORWARDED": trusted})
    headers = {**signed("https://tunnel.example.net/voice/incoming"),
               "X-Forwarded-Proto": "https", "X-Forwarded-Host": "tunnel.example.net"}
    assert post_internal(app.test_client(), headers).status_code == expected


def test_without_an_auth_token_nothing_is_accepted(app_config, caplog):
    from ivr import create_app

    app = create_app({**app_config, "TWILIO_AUTH_TOKEN": ""})
    response = post_internal(app.test_client(), signed("https://ivr.example.test/voice/incoming", token=""))
    assert response.status_code == 403 and b"TWILIO_AUTH_TOKEN" not in response.data
    assert "TWILIO_AUTH_TOKEN is not set" in caplog.text


@pytest.mark.parametrize("algorithm", ["HMAC_SHA1", "HMAC_SHA256", None])
def test_the_one_hmac_path_signs_what_twilio_signs(app, algorithm):
    """`_signs_exactly` hands the library the form's lists: it accepts exactly the library's
    signature, repeated keys (each distinct value, in order), empty values and non-ASCII text included."""
    from werkzeug.datastructures import MultiDict

    from ivr.telephony.security import _signs_exactly

    url = "https://ivr.example.test/voice/turn?step=ask&n=2"
    form = MultiDict([("SpeechResult", "café près d'ici"), ("Digits", ""), ("B", "2"), ("B", "1"), ("B", "2"),
                      ("CallSid", SID)])
    for params in (form, form.to_dict(), {}):
        signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(url, params, algorithm)
        assert _signs_exactly(TEST_AUTH_TOKEN, url, params, signature, algorithm)
        assert not _signs_exactly(TEST_AUTH_TOKEN, url + "x", params, signature, algorithm)
        assert not _signs_exactly("other", url, params, signature, algorithm)


def test_a_forged_signature_with_non_ascii_characters_is_refused_not_a_500(client):
    assert post_internal(client, {"X-Twilio-Signature": "sïgnature"}).status_code == 403
