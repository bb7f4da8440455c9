"""Telephone audio: G.711 μ-law ⇄ PCM16, resampling, WAV read/write.

Twilio delivers 8 kHz μ-law; recognisers want PCM16 at their own rate. Python 3.13 removed
`audioop`, so the codec is two numpy tables and the resampler is band-limited (windowed-sinc)
interpolation written here. WAV files are parsed by hand because the stdlib `wave` module
refuses μ-law (format tag 7), which is what a phone recording usually is.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np

_BIAS = 0x84
_CLIP = 32635
_HALF_TAPS = 16      # input samples on each side of an output sample; ≈ −60 dB stop band with Kaiser


class AudioError(ValueError):
    """A file or buffer that is not audio we can read, with what to do about it."""


def _ulaw_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> np.ndarray:
    """μ-law byte for every int16 value (65 536 entries): encoding becomes one lookup."""
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


_ULAW_TO_PCM = _ulaw_decode_table()
_PCM_TO_ULAW = _ulaw_encode_table()


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode G.711 μ-law bytes to little-endian PCM16 bytes (same sample count)."""
    return _ULAW_TO_PCM[np.frombuffer(ulaw, dtype=np.uint8)].astype("<i2").tobytes()


def pcm16_to_ulaw(pcm16: bytes) -> bytes:
    """Encode little-endian PCM16 bytes to G.711 μ-law bytes."""
    if len(pcm16) % 2:
        raise AudioError("PCM16 audio must have an even number of bytes (2 per sample)")
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.int32) + 32768
    return _PCM_TO_ULAW[samples].tobytes()


_TAPS = np.arange(-_HALF_TAPS, _HALF_TAPS + 1)
_WINDOW = np.kaiser(2 * _HALF_TAPS + 1, 8.0)


def _kaiser_sinc(offsets: np.ndarray, cutoff: float) -> np.ndarray:
    """Low-pass interpolation kernel at fractional `offsets` (in input samples)."""
    # Evaluate the window continuously by interpolating its samples: offsets are fractional.
    positions = np.clip(offsets + _HALF_TAPS, 0, 2 * _HALF_TAPS)
    return cutoff * np.sinc(cutoff * offsets) * np.interp(positions, np.arange(_WINDOW.size), _WINDOW)


@lru_cache(maxsize=32)
def _phase_table(src_rate: int, dst_rate: int) -> np.ndarray:
    """Kernel weights for every fractional position an output sample can fall on.

    Output n sits at input n·src/dst, whose fraction takes only dst/gcd distinct values, so the
    kernel is computed once per rate pair instead of once per sample (streaming calls it per frame).
    """
    step = gcd(src_rate, dst_rate)
    phases = np.arange(dst_rate // step) * step / dst_rate
    return _kaiser_sinc(phases[:, None] - _TAPS[None, :], min(1.0, dst_rate / src_rate)).astype(np.float32)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample float or int16 mono audio; returns float32 in the input's scale.

    Band-limited interpolation: each output sample is a windowed-sinc sum over its 33 nearest
    input samples, with the cut-off lowered when downsampling so nothing aliases.
    """
    if src_rate <= 0 or dst_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {src_rate} → {dst_rate}")
    data = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate or data.size == 0:
        return data.copy()
    count = int(round(data.size * dst_rate / src_rate))
    return _interpolate(data, np.arange(count, dtype=np.int64), src_rate, dst_rate, 0)


def _interpolate(data: np.ndarray, outputs: np.ndarray, src_rate: int, dst_rate: int, offset: int) -> np.ndarray:
    """Output samples with absolute indices `outputs`; `data[0]` is absolute input sample `offset`."""
    table = _phase_table(src_rate, dst_rate)
    step = gcd(src_rate, dst_rate)
    out = np.empty(outputs.size, dtype=np.float32)
    padded = np.concatenate([np.zeros(_HALF_TAPS + 1, np.float32), data, np.zeros(_HALF_TAPS + 1, np.float32)])
    block = 4096  # bounded memory: (block × 33) floats at a time
    for start in range(0, outputs.size, block):
        numerator = outputs[start:start + block] * src_rate
        base = numerator // dst_rate - offset
        weights = table[(numerator % dst_rate) // step]
        index = base[:, None] + _TAPS[None, :] + _HALF_TAPS + 1
        out[start:start + block] = (padded[index] * weights).sum(axis=1)
    return out


class StreamResampler:
    """Resample a PCM16 stream chunk by chunk with the same result as resampling it whole.

    Keeps the input tail a kernel needs, so chunk edges do not click; `flush()` returns the rest.
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise AudioError(f"sample rates must be positive, got {src_rate} → {dst_rate}")
        self.src_rate, self.dst_rate = src_rate, dst_rate
        self._ratio = src_rate / dst_rate
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0     # absolute input index of _buffer[0]
        self._next_out = 0         # absolute index of the next output sample
        self._received = 0

    def process(self, pcm16: bytes) -> bytes:
        """Feed PCM16 bytes at `src_rate`; returns the PCM16 bytes at `dst_rate` ready so far."""
        chunk = np.frombuffer(pcm16, dtype="<i2").astype(np.float32)
        if self.src_rate == self.dst_rate:
            return pcm16
        self._buffer = np.concatenate([self._buffer, chunk])
        self._received += chunk.size
        return self._emit(self._received - _HALF_TAPS - 1)

    def flush(self) -> bytes:
        """Everything still owed, treating the stream as ended (zeros after the last sample)."""
        if self.src_rate == self.dst_rate:
            return b""
        return self._emit(self._received)

    def _emit(self, usable_until: int) -> bytes:
        total = int(round(self._received / self._ratio)) if usable_until >= self._received else None
        last = total if total is not None else int(np.floor(usable_until / self._ratio)) + 1
        if last <= self._next_out:
            return b""
        # The buffer keeps _HALF_TAPS samples of history, so the zero padding _interpolate adds
        # on the left is never reached except at the true start of the stream.
        out = _interpolate(self._buffer, np.arange(self._next_out, last, dtype=np.int64),
                           self.src_rate, self.dst_rate, self._buffer_start)
        self._next_out = last
        keep_from = max(0, int(np.floor(last * self._ratio)) - _HALF_TAPS - 1 - self._buffer_start)
        self._buffer = self._buffer[keep_from:]
        self._buffer_start += keep_from
        return to_pcm16(out)


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float/int samples in int16 scale → clipped little-endian PCM16 bytes."""
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


@dataclass(frozen=True)
class Audio:
    """Mono PCM16 audio in memory."""
    pcm16: bytes
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm16) / 2 / self.sample_rate

    def at_rate(self, sample_rate: int) -> "Audio":
        """The same audio resampled to `sample_rate`."""
        if sample_rate == self.sample_rate:
            return self
        samples = np.frombuffer(self.pcm16, dtype="<i2")
        return Audio(to_pcm16(resample(samples, self.sample_rate, sample_rate)), sample_rate)


_PCM, _ULAW, _EXTENSIBLE = 1, 7, 0xFFFE


def read_wav(path: str | Path) -> Audio:
    """Read a WAV file (PCM 8/16/24/32-bit or μ-law, any rate, any channel count) as mono PCM16."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the audio file ({exc.strerror})") from exc
    return parse_wav(data, str(path))


def parse_wav(data: bytes, name: str = "audio") -> Audio:
    """Parse WAV bytes; see `read_wav`."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a WAV file (no RIFF/WAVE header); convert it with "
                         "`sox IN -r 8000 -e u-law OUT.wav`")
    fmt: tuple[int, int, int, int] | None = None
    payload: bytes | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = data[offset + 8:offset + 8 + size]
        if chunk_id == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]   # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            payload = body
        offset += 8 + size + (size & 1)     # chunks are word-aligned
    if fmt is None or payload is None:
        raise AudioError(f"{name}: WAV file has no {'fmt' if fmt is None else 'data'} chunk")
    return Audio(_decode(payload, *fmt, name=name), fmt[2])


def _decode(payload: bytes, tag: int, channels: int, rate: int, bits: int, *, name: str) -> bytes:
    if channels < 1 or rate < 1:
        raise AudioError(f"{name}: WAV header says {channels} channels at {rate} Hz")
    if tag == _ULAW and bits == 8:
        samples = _ULAW_TO_PCM[np.frombuffer(payload, dtype=np.uint8)].astype(np.float32)
    elif tag == _PCM and bits == 8:
        samples = (np.frombuffer(payload, dtype=np.uint8).astype(np.float32) - 128) * 256
    elif tag == _PCM and bits == 16:
        samples = np.frombuffer(payload[: len(payload) // 2 * 2], dtype="<i2").astype(np.float32)
    elif tag == _PCM and bits in (24, 32):
        width = bits // 8
        raw = np.frombuffer(payload[: len(payload) // width * width], dtype=np.uint8).reshape(-1, width)
        # Keep the top two bytes: 16-bit precision is all a phone line carries.
        samples = raw[:, -2:].copy().view("<i2").reshape(-1).astype(np.float32)
    else:
        raise AudioError(f"{name}: unsupported WAV encoding (format {tag}, {bits}-bit); use μ-law "
                         "or 16-bit PCM: `sox IN -r 8000 -e u-law OUT.wav`")
    usable = samples.size // channels * channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1)
    return to_pcm16(mono)


def wav_bytes(audio: Audio, *, ulaw: bool = False) -> bytes:
    """Serialise mono audio as a WAV file: 16-bit PCM, or 8-bit μ-law like a phone recording."""
    payload = pcm16_to_ulaw(audio.pcm16) if ulaw else audio.pcm16
    tag, bits = (_ULAW, 8) if ulaw else (_PCM, 16)
    block = bits // 8
    # Non-PCM formats carry cbSize=0 and a fact chunk (sample count), as the WAV spec asks.
    fmt = struct.pack("<HHIIHH", tag, 1, audio.sample_rate, audio.sample_rate * block, block, bits)
    chunks = [b"fmt " + struct.pack("<I", len(fmt) + (2 if ulaw else 0)) + fmt + (b"\0\0" if ulaw else b"")]
    if ulaw:
        chunks.append(b"fact" + struct.pack("<II", 4, len(payload)))
    chunks.append(b"data" + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) & 1 else b""))
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_wav(path: str | Path, audio: Audio, *, ulaw: bool = False) -> Path:
    """Write `audio` to `path` (see `wav_bytes`); returns the path."""
    target = Path(path)
    target.write_bytes(wav_bytes(audio, ulaw=ulaw))
    return target
