"""Media Streams wire format: Twilio's documented JSON ⇄ events, and round trips of every type."""
from __future__ import annotations

import base64
import json

import pytest

from ivr.telephony import stream
from ivr.telephony.stream import (Clear, Connected, Dtmf, Mark, Media, MediaFormat, Start, Stop,
                                  StreamProtocolError, encode, parse)

SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA00000000000000000000000000000001"

# Shapes as Twilio's "Media Streams - WebSocket Messages" page documents them.
TWILIO_START = {
    "event": "start", "sequenceNumber": "1", "streamSid": SID,
    "start": {"accountSid": "AC123", "streamSid": SID, "callSid": CALL,
              "tracks": ["inbound"],
              "customParameters": {"language": "es", "step": "ask"},
              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
}
TWILIO_MEDIA = {
    "event": "media", "sequenceNumber": "3", "streamSid": SID,
    "media": {"track": "inbound", "chunk": "1", "timestamp": "5",
              "payload": base64.b64encode(b"\xff" * 160).decode()},
}


def test_parse_start_reads_call_and_parameters():
    event = parse(json.dumps(TWILIO_START))
    assert event == Start(stream_sid=SID, call_sid=CALL, account_sid="AC123", tracks=("inbound",),
                          media_format=MediaFormat("audio/x-mulaw", 8000, 1),
                          custom_parameters={"language": "es", "step": "ask"}, sequence_number=1)


def test_parse_media_decodes_payload_and_counters():
    event = parse(json.dumps(TWILIO_MEDIA))
    assert isinstance(event, Media)
    assert event.payload == b"\xff" * 160
    assert (event.track, event.chunk, event.timestamp_ms, event.sequence_number) == ("inbound", 1, 5, 3)


def test_parse_dtmf_mark_stop_connected():
    assert parse('{"event":"connected","protocol":"Call","version":"1.0.0"}') == Connected()
    dtmf = {"event": "dtmf", "streamSid": SID, "sequenceNumber": "5",
            "dtmf": {"track": "inbound_track", "digit": "1"}}
    assert parse(json.dumps(dtmf)) == Dtmf(SID, "1", "inbound_track", 5)
    mark = {"event": "mark", "sequenceNumber": "4", "streamSid": SID, "mark": {"name": "prompt"}}
    assert parse(json.dumps(mark)) == Mark(SID, "prompt", 4)
    stop = {"event": "stop", "sequenceNumber": "5", "streamSid": SID,
            "stop": {"accountSid": "AC123", "callSid": CALL}}
    assert parse(json.dumps(stop)) == Stop(SID, CALL, "AC123", 5)


def test_outbound_messages_match_twilio_schema():
    assert json.loads(encode(Clear(SID))) == {"event": "clear", "streamSid": SID}
    assert json.loads(encode(Mark(SID, "prompt-1"))) == {
        "event": "mark", "streamSid": SID, "mark": {"name": "prompt-1"}}
    assert json.loads(encode(Media(SID, b"\x00\x01"))) == {
        "event": "media", "streamSid": SID, "media": {"payload": "AAE="}}


@pytest.mark.parametrize("event", [
    Connected(),
    Start(SID, CALL, "AC1", ("inbound",), MediaFormat(), {"lang": "en"}, 1),
    Media(SID, bytes(range(256)), "inbound", 7, 140, 9),
    Media(SID, b"\x7f" * 8000),
    Dtmf(SID, "#", "inbound_track", 2),
    Mark(SID, "end-of-prompt", 3),
    Clear(SID),
    Stop(SID, CALL, "AC1", 10),
])
def test_round_trip(event):
    assert parse(encode(event)) == event


def test_media_messages_split_prompt_audio_in_order():
    audio = bytes(range(256)) * 70  # 17,920 bytes → 8000 + 8000 + 1920
    frames = [parse(text) for text in stream.media_messages(SID, audio)]
    assert [len(f.payload) for f in frames] == [8000, 8000, 1920]
    assert b"".join(f.payload for f in frames) == audio


@pytest.mark.parametrize("text, complaint", [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"event": "media", "streamSid": "MZ1", "media": {"payload": "%%%"}}', "base64"),
    ('{"event": "media", "streamSid": "MZ1"}', "'media'"),
    ('{"event": "start", "streamSid": "MZ1", "start": {}}', "callSid"),
    ('{"event": "dtmf", "streamSid": "MZ1", "dtmf": {}}', "digit"),
    ('{"event": "media", "media": {"payload": ""}}', "streamSid"),
    ('{"event": "hello", "streamSid": "MZ1"}', "unknown event"),
    ('{"event": "mark", "streamSid": "MZ1", "sequenceNumber": "x", "mark": {"name": "a"}}', "whole number"),
])
def test_bad_frames_get_a_clear_error(text, complaint):
    with pytest.raises(StreamProtocolError, match=complaint):
        parse(text)
