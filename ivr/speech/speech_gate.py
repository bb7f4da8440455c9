"""Holding back the line's audio until the caller first speaks. Pure: bytes in, bytes out.

On a media stream the recogniser opens before the prompt plays, so it hears the caller's line for
the whole prompt (seconds of hiss) before any word. Pocketsphinx's live cepstral mean follows
whatever it is fed: after 3 s of quiet line noise the mean had drifted far enough that "someone
spray painted my garage door" was heard as "someone to break into my garage" (a false emergency;
bench/asr.py --lead 3). The gate drops that stretch except its last `keep_s`, which the model
needs as the silence before a word, and reports how much it dropped so word times stay true.
"""
from __future__ import annotations

from ivr.speech.endpointing import frame_rms

#: Well below the endpointer's default voice level (400): a line quiet enough to stay under this
#: is one the endpointer would not hear as speech either; a noisier line only opens the gate at
#: once, which is how every call was decoded before the gate.
OPEN_RMS = 200.0
#: Silence kept before the first word: the length the test speech has, and enough for the
#: model's silence state.
KEEP_SECONDS = 0.3


class SpeechGate:
    """Passes audio through once a chunk is as loud as speech; before that keeps only the tail."""

    def __init__(self, bytes_per_second: int, keep_s: float = KEEP_SECONDS, open_rms: float = OPEN_RMS) -> None:
        if bytes_per_second <= 0 or keep_s < 0 or open_rms <= 0:
            raise ValueError("SpeechGate needs a positive byte rate and level and a non-negative keep_s")
        self._bytes_per_second = bytes_per_second
        self._keep = int(keep_s * bytes_per_second) // 2 * 2     # whole 16-bit samples
        self._open_rms = open_rms
        self._held = b""
        self._dropped = 0
        self.open = False

    @property
    def skipped_s(self) -> float:
        """Seconds of audio dropped before the first byte passed on."""
        return self._dropped / self._bytes_per_second

    def push(self, level_pcm16: bytes, audio: bytes) -> bytes:
        """The audio to decode now. `level_pcm16` is the chunk as received (judged for loudness),
        `audio` the same chunk as the decoder takes it (e.g. resampled)."""
        if self.open:
            return audio
        held = self._held + audio
        if frame_rms(level_pcm16) >= self._open_rms:
            self.open, self._held = True, b""
            return held
        cut = max(0, len(held) - self._keep)
        self._dropped += cut
        self._held = held[cut:]
        return b""

    def flush(self) -> bytes:
        """What is still held (the caller never spoke): the decoder gets its short silence."""
        held, self._held = self._held, b""
        return held
