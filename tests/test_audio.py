"""μ-law codec, resampling and WAV files (no audioop; numpy only)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from ivr.speech.audio import (Audio, AudioError, StreamResampler, parse_wav, pcm16_to_ulaw, read_wav,
                              resample, ulaw_to_pcm16, wav_bytes, write_wav)


def tone(freq: float, rate: int, seconds: float = 1.0, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def test_ulaw_reference_values():
    # G.711 anchors: silence encodes to 0xFF, full scale to 0x80/0x00, 0xFF/0x7F decode to 0.
    assert pcm16_to_ulaw(struct.pack("<3h", 0, 32767, -32768)) == bytes([0xFF, 0x80, 0x00])
    assert struct.unpack("<4h", ulaw_to_pcm16(bytes([0xFF, 0x7F, 0x80, 0x00]))) == (0, 0, 32124, -32124)


def test_ulaw_round_trip_error_is_within_quantisation_step():
    pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
    back = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(pcm.tobytes())), dtype="<i2").astype(np.int32)
    error = np.abs(back - pcm.astype(np.int32))
    # μ-law steps grow with magnitude: about 1/16 of the value, never more than 1024.
    assert np.all(error <= np.maximum(8, np.abs(pcm.astype(np.int32)) / 15))
    assert error.max() <= 1024


def test_ulaw_rejects_odd_byte_count():
    with pytest.raises(AudioError, match="even number of bytes"):
        pcm16_to_ulaw(b"\x00\x01\x02")


@pytest.mark.parametrize("src,dst", [(8000, 16000), (22050, 8000), (16000, 8000), (44100, 16000)])
def test_resample_keeps_pitch_and_length(src, dst):
    out = resample(tone(440, src), src, dst)
    assert out.size == dst
    assert peak_hz(out, dst) == pytest.approx(440, abs=3)


def test_downsampling_removes_frequencies_above_the_new_nyquist():
    # A 6 kHz tone cannot exist at 8 kHz: it must be filtered out, not folded to 2 kHz.
    out = resample(tone(6000, 22050), 22050, 8000)
    assert np.sqrt(np.mean(out[200:-200] ** 2)) < 0.01 * 8000


def test_resample_rejects_bad_rates():
    with pytest.raises(AudioError, match="positive"):
        resample(np.zeros(10), 0, 8000)


@pytest.mark.parametrize("src,dst,chunk", [(8000, 16000, 160), (22050, 8000, 441), (8000, 16000, 37)])
def test_stream_resampler_matches_whole_file(src, dst, chunk):
    samples = (tone(300, src, 0.5) + tone(1234, src, 0.5) // 2).astype(np.int16)
    whole = np.rint(resample(samples, src, dst)).astype(np.int16)
    stream = StreamResampler(src, dst)
    raw = samples.tobytes()
    pieces = [stream.process(raw[i:i + 2 * chunk]) for i in range(0, len(raw), 2 * chunk)]
    streamed = np.frombuffer(b"".join(pieces) + stream.flush(), dtype="<i2")
    assert streamed.size == whole.size
    assert np.abs(streamed.astype(np.int32) - whole).max() <= 1


def test_wav_round_trip_ulaw_and_pcm(tmp_path):
    audio = Audio(tone(440, 8000, 0.25).tobytes(), 8000)
    for ulaw in (True, False):
        path = write_wav(tmp_path / f"x{ulaw}.wav", audio, ulaw=ulaw)
        back = read_wav(path)
        assert back.sample_rate == 8000
        assert len(back.pcm16) == len(audio.pcm16)
        diff = np.frombuffer(back.pcm16, "<i2").astype(int) - np.frombuffer(audio.pcm16, "<i2")
        assert np.abs(diff).max() <= (300 if ulaw else 0)


def test_ulaw_wav_header_is_standard():
    data = wav_bytes(Audio(b"\0\0" * 100, 8000), ulaw=True)
    tag, channels, rate, byte_rate, block, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (tag, channels, rate, byte_rate, block, bits) == (7, 1, 8000, 8000, 1, 8)
    assert b"fact" in data and data[:4] == b"RIFF"


def _pcm_wav(samples: np.ndarray, rate: int, channels: int, bits: int) -> bytes:
    payload = samples.tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_stereo_is_mixed_to_mono():
    left = tone(440, 16000, 0.1)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    audio = parse_wav(_pcm_wav(stereo, 16000, 2, 16))
    assert audio.sample_rate == 16000
    assert np.array_equal(np.frombuffer(audio.pcm16, "<i2"), left)


def test_24_bit_pcm_keeps_the_top_16_bits():
    values = np.array([0x123456, -0x100000], dtype=np.int32)
    raw = np.frombuffer(values.astype("<i4").tobytes(), np.uint8).reshape(-1, 4)[:, :3].copy()
    audio = parse_wav(_pcm_wav(raw.reshape(-1), 8000, 1, 24))
    assert list(np.frombuffer(audio.pcm16, "<i2")) == [0x1234, -0x1000]


def test_not_a_wav_file_says_how_to_convert(tmp_path):
    bad = tmp_path / "call.mp3"
    bad.write_bytes(b"ID3\x03" + b"\0" * 40)
    with pytest.raises(AudioError, match="not a WAV file.*sox"):
        read_wav(bad)
    with pytest.raises(AudioError, match="cannot read"):
        read_wav(tmp_path / "missing.wav")


def test_unsupported_encoding_is_named():
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)   # IEEE float
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4) + b"\0" * 4
    with pytest.raises(AudioError, match="unsupported WAV encoding \\(format 3"):
        parse_wav(b"RIFF" + struct.pack("<I", len(body)) + body)


def _tone(seconds: float, amplitude: float, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def test_speech_gate_drops_the_line_before_the_first_word_but_its_last_moment():
    from ivr.speech.speech_gate import SpeechGate

    gate = SpeechGate(16000, keep_s=0.3)            # 8 kHz PCM16: 16 000 bytes a second
    hiss = _tone(0.02, 40)                           # a 20 ms frame of quiet line
    passed = b"".join(gate.push(hiss, hiss) for _ in range(100))     # two seconds of it
    assert passed == b"" and not gate.open
    word = _tone(0.02, 3000)
    out = gate.push(word, word)
    assert gate.open and out.endswith(word) and len(out) == len(word) + 4800    # 0.3 s kept
    assert gate.skipped_s == pytest.approx(1.7)
    assert gate.push(hiss, hiss) == hiss             # open: everything passes, quiet or not
    assert gate.flush() == b""


def test_speech_gate_gives_back_the_held_silence_when_nobody_spoke():
    from ivr.speech.speech_gate import SpeechGate

    gate = SpeechGate(16000, keep_s=0.1)
    quiet = _tone(0.5, 40)
    assert gate.push(quiet, quiet) == b""
    assert len(gate.flush()) == 1600 and gate.skipped_s == pytest.approx(0.4)
    with pytest.raises(ValueError, match="positive byte rate"):
        SpeechGate(0)
