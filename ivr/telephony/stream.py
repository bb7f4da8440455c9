"""Twilio Media Streams wire format ⇄ events. Pure: no sockets, no Flask, no clocks.

Twilio sends `connected`, `start`, `media`, `dtmf`, `mark` and `stop` as JSON text frames;
on a bidirectional (`<Connect><Stream>`) stream we send `media`, `mark` and `clear` back.
Audio is 8 kHz mono μ-law, base64 in `media.payload`, 20 ms (160 bytes) per inbound frame.

`parse(text)` turns any of these messages (either direction) into a frozen event and
`encode(event)` does the reverse, so the server and the test client share one codec.
Sequence numbers, chunks and timestamps arrive as strings and are kept as ints here.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

#: Twilio's inbound audio: 8000 samples/s μ-law, one byte per sample, 20 ms per frame.
SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000


class StreamProtocolError(ValueError):
    """A frame that is not a Media Streams message we understand; the text says what is wrong."""


@dataclass(frozen=True)
class MediaFormat:
    encoding: str = "audio/x-mulaw"
    sample_rate: int = SAMPLE_RATE
    channels: int = 1


@dataclass(frozen=True)
class Connected:
    protocol: str = "Call"
    version: str = "1.0.0"


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str = ""
    tracks: tuple[str, ...] = ("inbound",)
    media_format: MediaFormat = MediaFormat()
    #: The `<Parameter name value>` pairs from the TwiML, as Twilio echoes them back.
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    sequence_number: int | None = None


@dataclass(frozen=True)
class Media:
    """Audio; inbound frames carry track/chunk/timestamp, the ones we send only the payload."""
    stream_sid: str
    payload: bytes                     # raw μ-law bytes (already base64-decoded)
    track: str | None = None           # "inbound" | "outbound"
    chunk: int | None = None
    timestamp_ms: int | None = None    # since the stream started
    sequence_number: int | None = None


@dataclass(frozen=True)
class Dtmf:
    stream_sid: str
    digit: str
    track: str = "inbound_track"
    sequence_number: int | None = None


@dataclass(frozen=True)
class Mark:
    """Sent by us after audio; Twilio echoes it when that audio has played (or was cleared)."""
    stream_sid: str
    name: str
    sequence_number: int | None = None


@dataclass(frozen=True)
class Clear:
    """Sent by us: drop the audio Twilio has buffered for the caller (barge-in)."""
    stream_sid: str


@dataclass(frozen=True)
class Stop:
    stream_sid: str
    call_sid: str = ""
    account_sid: str = ""
    sequence_number: int | None = None


Event = Union[Connected, Start, Media, Dtmf, Mark, Clear, Stop]


def _obj(message: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = message.get(key)
    if not isinstance(value, Mapping):
        raise StreamProtocolError(f"'{message.get('event')}' message needs an object '{key}'")
    return value


def _text(container: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = container.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise StreamProtocolError(f"{where} needs a non-empty string '{key}'")
    return value


def _int(container: Mapping[str, Any], key: str) -> int | None:
    # Twilio sends counters as decimal strings ("sequenceNumber": "2").
    value = container.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StreamProtocolError(f"'{key}' must be a whole number, got {value!r}") from None


def _payload(media: Mapping[str, Any]) -> bytes:
    raw = media.get("payload")
    if not isinstance(raw, str):
        raise StreamProtocolError("'media' message needs a base64 string 'media.payload'")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise StreamProtocolError("'media.payload' is not valid base64") from None


def parse(text: str | bytes) -> Event:
    """One websocket text frame → event; raises `StreamProtocolError` saying what is wrong."""
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StreamProtocolError("frame is not JSON") from None
    if not isinstance(message, dict):
        raise StreamProtocolError("frame is not a JSON object")
    kind = message.get("event")
    seq = _int(message, "sequenceNumber")
    if kind == "connected":
        return Connected(protocol=message.get("protocol", "Call"), version=message.get("version", ""))
    if kind == "clear":
        return Clear(stream_sid=_text(message, "streamSid", "'clear'"))
    sid = _text(message, "streamSid", f"'{kind}' message")
    if kind == "media":
        media = _obj(message, "media")
        return Media(stream_sid=sid, payload=_payload(media), track=media.get("track"),
                     chunk=_int(media, "chunk"), timestamp_ms=_int(media, "timestamp"),
                     sequence_number=seq)
    if kind == "start":
        start = _obj(message, "start")
        fmt = start.get("mediaFormat") or {}
        params = start.get("customParameters") or {}
        if not isinstance(params, Mapping) or not isinstance(fmt, Mapping):
            raise StreamProtocolError("'start.customParameters' and 'start.mediaFormat' must be objects")
        return Start(
            stream_sid=sid, call_sid=_text(start, "callSid", "'start'"),
            account_sid=start.get("accountSid", ""), tracks=tuple(start.get("tracks") or ("inbound",)),
            media_format=MediaFormat(encoding=fmt.get("encoding", "audio/x-mulaw"),
                                     sample_rate=_int(fmt, "sampleRate") or SAMPLE_RATE,
                                     channels=_int(fmt, "channels") or 1),
            custom_parameters={str(k): str(v) for k, v in params.items()}, sequence_number=seq)
    if kind == "dtmf":
        dtmf = _obj(message, "dtmf")
        return Dtmf(stream_sid=sid, digit=_text(dtmf, "digit", "'dtmf'"),
                    track=dtmf.get("track", "inbound_track"), sequence_number=seq)
    if kind == "mark":
        return Mark(stream_sid=sid, name=_text(_obj(message, "mark"), "name", "'mark'"),
                    sequence_number=seq)
    if kind == "stop":
        stop = message.get("stop") or {}
        return Stop(stream_sid=sid, call_sid=stop.get("callSid", ""),
                    account_sid=stop.get("accountSid", ""), sequence_number=seq)
    raise StreamProtocolError(f"unknown event {kind!r}; expected connected, start, media, "
                              "dtmf, mark, clear or stop")


def _with_seq(message: dict[str, Any], seq: int | None) -> dict[str, Any]:
    if seq is not None:
        message["sequenceNumber"] = str(seq)
    return message


def encode(event: Event) -> str:
    """Event → the JSON text frame Twilio sends or accepts (the inverse of `parse`)."""
    if isinstance(event, Connected):
        return json.dumps({"event": "connected", "protocol": event.protocol, "version": event.version})
    if isinstance(event, Clear):
        return json.dumps({"event": "clear", "streamSid": event.stream_sid})
    if isinstance(event, Media):
        media: dict[str, Any] = {"payload": base64.b64encode(event.payload).decode("ascii")}
        if event.track is not None:
            media["track"] = event.track
        if event.chunk is not None:
            media["chunk"] = str(event.chunk)
        if event.timestamp_ms is not None:
            media["timestamp"] = str(event.timestamp_ms)
        return json.dumps(_with_seq({"event": "media", "streamSid": event.stream_sid,
                                     "media": media}, event.sequence_number))
    if isinstance(event, Start):
        fmt = event.media_format
        start = {"accountSid": event.account_sid, "streamSid": event.stream_sid,
                 "callSid": event.call_sid, "tracks": list(event.tracks),
                 "customParameters": dict(event.custom_parameters),
                 "mediaFormat": {"encoding": fmt.encoding, "sampleRate": fmt.sample_rate,
                                 "channels": fmt.channels}}
        return json.dumps(_with_seq({"event": "start", "streamSid": event.stream_sid,
                                     "start": start}, event.sequence_number))
    if isinstance(event, Dtmf):
        return json.dumps(_with_seq({"event": "dtmf", "streamSid": event.stream_sid,
                                     "dtmf": {"track": event.track, "digit": event.digit}},
                                    event.sequence_number))
    if isinstance(event, Mark):
        return json.dumps(_with_seq({"event": "mark", "streamSid": event.stream_sid,
                                     "mark": {"name": event.name}}, event.sequence_number))
    if isinstance(event, Stop):
        return json.dumps(_with_seq({"event": "stop", "streamSid": event.stream_sid,
                                     "stop": {"accountSid": event.account_sid,
                                              "callSid": event.call_sid}}, event.sequence_number))
    raise TypeError(f"not a Media Streams event: {event!r}")


def media_messages(stream_sid: str, ulaw: bytes, chunk_bytes: int = 8000) -> list[str]:
    """Outbound audio split into frames (default one second each) ready to send to Twilio."""
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    return [encode(Media(stream_sid=stream_sid, payload=ulaw[i:i + chunk_bytes]))
            for i in range(0, len(ulaw), chunk_bytes)]
