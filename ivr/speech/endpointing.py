"""Deciding that the caller has started, and finished, speaking. Pure: fed audio and partials.

Time here is *audio* time (20 ms per frame received), not the wall clock, so the decisions are
deterministic and a test can push audio faster than real time.

Why not just wait for the recogniser's own endpoint: Vosk waits about 500 ms of silence before
it finalises, and pocketsphinx has no endpoint at all. A caller hears that as lag. Two rules end a
turn sooner:

* **early** — the caller has paused (`early_silence_ms`, 200 ms), the recogniser has already heard
  that pause, its partial text already routes confidently to one destination that has not
  changed over the last `stable_ms` of decoded audio, and the partial does not stop on a word that
  leaves the sentence open ("…on the", "…and"; `UNFINISHED_WORDS`). The words may still be
  settling ("on Main Street" → "on Maine Street"); where the call goes is what has to be stable.
* **silence** — otherwise, an energy-based trailing silence (`trailing_silence_ms`, 500 ms).

Why these numbers (bench/asr.py on the dev set, piper speech): with a 120 ms early pause, 31 of
183 turns were cut off mid-sentence, all by the early rule — a synthetic speaker's pauses between
words already reach 120–180 ms, and a real caller's run 200–500 ms. At 200 ms plus the open-word
check, 3 were (the pause did most of it; the check is for real callers, who hesitate after
"my…"). A caller cut off loses the rest of the sentence ("…and he is not breathing"): waiting
80 ms longer is the cheaper mistake. The trailing silence sits above natural mid-sentence pauses
because nothing else checks it.

Engines without partials (Whisper) cannot feed the early rule frame by frame, and decoding the
stream over and over with a heavy model would cost a core per caller. For them the endpointer says
**pause** once the caller has been quiet for `pause_ms` (150 ms: after a word, before the early
rule could fire): the stream then decodes the utterance once, and hands the result back with
`decoded(text, covers_to_ms, destination)`. Optionally (`speculate_ms` below `pause_ms`, e.g.
IVR_ENDPOINT_SPECULATE_MS=100) it says **pause** sooner with reason "idle": decode then only if a
decoding thread is idle, else at `pause_ms` as usual. Off by default, measured: a decode of the
audio to 100 ms after the last word routes the held-out set exactly as one to 150 or 500 ms does,
and the decode lands 50 ms sooner on an idle machine, but piper's speech leaves a 100–150 ms gap
in almost every sentence, so decodes per turn went from 1.1 to 1.9 (3.5 in the production
server), and on a busy machine the thrown-away decode still running delays the real one. That result stands for the whole utterance while the
caller stays quiet, so it ends the turn by the **early** rule (confident, not on an open word, after
`early_silence_ms`), at once when it is an **emergency**, or becomes the final transcript at the
trailing silence. If the caller goes on, the endpointer says **resume** and ignores the stale
result.

Plus guards: `no_input_ms` of silence after the prompt (nobody spoke), `max_turn_ms` of talking
(a caller who never pauses), and `max_stream_ms` in all (a prompt whose end we never heard about).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ivr.lang import builtin

#: Reasons an `END` signal can carry; stored with the turn so admins can see why we stopped.
REASONS = ("early", "emergency", "silence", "no_input", "max_length", "max_stream")

#: Destination that may end early even on an open word: whatever follows, the call goes to 911.
EMERGENCY = "emergency"

#: Words a sentence does not end on (the English language file's `unfinished_words`): a partial
#: stopping here means the caller paused mid-thought, so only the (longer) trailing silence may end
#: the turn. Other languages' partials never match, and there the early rule works as before.
UNFINISHED_WORDS = builtin("en").unfinished_words


@dataclass(frozen=True)
class EndpointConfig:
    frame_ms: int = 20
    speech_rms: float = 400.0        # int16 RMS that counts as voice on a phone line
    noise_ratio: float = 3.0         # …or this many times the running noise floor, if louder
    barge_in_ms: int = 80            # sustained voice before we say the caller is talking
    min_speech_ms: int = 160         # shorter bursts (a click, a cough) are noise, not a turn
    pause_ms: int = 150              # quiet this long: decode the utterance (engines without partials)
    speculate_ms: int = 150          # …or this long, only if a thread is idle (off while ≥ pause_ms)
    early_silence_ms: int = 200      # > the 120–180 ms gaps between words even a fluent voice leaves
    stable_ms: int = 100             # confident destination unchanged over this much decoded audio
    trailing_silence_ms: int = 500   # above natural mid-sentence pauses (200–500 ms)
    no_input_ms: int = 5000
    max_turn_ms: int = 15000
    max_stream_ms: int = 60000

    def __post_init__(self) -> None:
        for name in ("frame_ms", "speculate_ms", "pause_ms", "early_silence_ms", "trailing_silence_ms", "no_input_ms",
                     "max_turn_ms", "max_stream_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EndpointConfig.{name} must be positive")
        if self.early_silence_ms > self.trailing_silence_ms:
            raise ValueError("early_silence_ms must not exceed trailing_silence_ms")


@dataclass(frozen=True)
class Signal:
    kind: str          # "speech" (caller started talking: barge-in) | "pause" (decode now; reason
    #                    "idle": only if a decoding thread is idle) |
    #                    "resume" (talking again after a pause) | "end" (turn is over)
    reason: str = ""   # for "end": one of REASONS; for "pause": "idle" or ""
    at_ms: int = 0     # audio time of the decision


def frame_rms(pcm16: bytes) -> float:
    """Root-mean-square level of little-endian 16-bit PCM (0 for an empty frame)."""
    samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], dtype="<i2")
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def ends_open(text: str) -> bool:
    """Whether `text` stops on a word that leaves the sentence unfinished ("…in my")."""
    words = text.lower().split()
    return bool(words) and words[-1].strip(".,!?;:") in UNFINISHED_WORDS


class Endpointer:
    """Feed it every inbound frame (`audio`) and every new partial (`partial`); act on signals."""

    def __init__(self, config: EndpointConfig | None = None) -> None:
        self.config = config or EndpointConfig()
        self.now_ms = 0
        self.listen_from_ms: int | None = None   # when the prompt finished (no-input clock)
        self.speech_run_ms = 0                   # consecutive voiced audio
        self.speech_ms = 0                       # voiced audio in this turn
        self.speech_started_ms: int | None = None
        self.silence_started_ms: int | None = None
        self.noise_floor = 0.0
        self.partial_text = ""
        self.partial_heard_to_ms = 0
        self.destination: str | None = None      # where the partial routes confidently, if anywhere
        self.destination_since_ms = 0
        self.decoded_to_ms: int | None = None    # audio covered by the last whole-utterance decode
        self.ended: Signal | None = None
        self._announced = False
        self._paused = 0                         # "pause" said for the current silence run: 0, 1 (idle), 2

    # -- inputs -------------------------------------------------------------------------------
    def prompt_finished(self) -> None:
        """The caller has heard the whole prompt: start the no-input clock (idempotent)."""
        if self.listen_from_ms is None:
            self.listen_from_ms = self.now_ms

    def partial(self, text: str, heard_to_ms: int, destination: str | None) -> None:
        """The recogniser's running hypothesis after decoding audio up to `heard_to_ms`, and
        where it would route confidently (a department, "emergency" …) or None if not confident."""
        self.partial_text = " ".join(text.split())
        destination = destination if self.partial_text else None
        if destination != self.destination:
            self.destination = destination
            self.destination_since_ms = heard_to_ms
        self.partial_heard_to_ms = max(self.partial_heard_to_ms, heard_to_ms)

    def decoded(self, text: str, covers_to_ms: int, destination: str | None) -> None:
        """A decode of the whole utterance up to audio time `covers_to_ms` (engines without
        partials), and where it routes confidently. Ignored once the caller spoke after it."""
        if self.silence_started_ms is None or covers_to_ms < self.silence_started_ms:
            return        # stale: the caller went on after the audio it decoded
        self.partial_text = " ".join(text.split())
        self.destination = destination if self.partial_text else None
        self.decoded_to_ms = covers_to_ms

    def audio(self, pcm16: bytes) -> Signal | None:
        """One inbound frame; returns "speech" once when talking starts, "end" once at the end."""
        if self.ended:
            return None
        cfg = self.config
        duration = len(pcm16) * 1000 // (2 * 8000) or cfg.frame_ms
        self.now_ms += duration
        level = frame_rms(pcm16)
        voiced = level >= max(cfg.speech_rms, self.noise_floor * cfg.noise_ratio)
        resumed = False
        if voiced:
            self.speech_run_ms += duration
            self.speech_ms += duration
            self.silence_started_ms = None
            if self.speech_started_ms is None and self.speech_run_ms >= cfg.barge_in_ms:
                self.speech_started_ms = self.now_ms - self.speech_run_ms
            resumed, self._paused = bool(self._paused), 0
        else:
            # Why a slow average: the floor must follow line noise, not the caller's pauses.
            self.noise_floor = level if self.noise_floor == 0 else 0.95 * self.noise_floor + 0.05 * level
            self.speech_run_ms = 0
            if self.silence_started_ms is None:
                self.silence_started_ms = self.now_ms - duration
        if self.speech_started_ms is not None and not self._announced:
            self._announced = True
            return Signal("speech", at_ms=self.now_ms)
        if resumed:
            self.decoded_to_ms = None
            return Signal("resume", at_ms=self.now_ms)
        ended = self.check()
        if ended is None:
            return self._pause_due()
        return ended

    def _pause_due(self) -> Signal | None:
        if self._paused == 2 or self.speech_started_ms is None or self.silence_started_ms is None:
            return None
        quiet = self.now_ms - self.silence_started_ms
        if quiet >= self.config.pause_ms:
            self._paused = 2
            return Signal("pause", at_ms=self.now_ms)
        if not self._paused and quiet >= self.config.speculate_ms:
            self._paused = 1
            return Signal("pause", "idle", self.now_ms)
        return None

    # -- decisions ----------------------------------------------------------------------------
    def check(self) -> Signal | None:
        """Whether the turn is over now; also called after a new partial arrives."""
        if self.ended:
            return None
        reason = self._end_reason()
        if reason:
            self.ended = Signal("end", reason, self.now_ms)
        return self.ended

    def _end_reason(self) -> str | None:
        cfg = self.config
        if self.now_ms >= cfg.max_stream_ms:
            return "max_stream"
        if self.speech_started_ms is None:
            if self.listen_from_ms is not None and self.now_ms - self.listen_from_ms >= cfg.no_input_ms:
                return "no_input"
            return None
        if self.now_ms - self.speech_started_ms >= cfg.max_turn_ms:
            return "max_length"
        if self.silence_started_ms is None:
            return None
        silent_for = self.now_ms - self.silence_started_ms
        if self._whole_decode_confident():
            if self.destination == EMERGENCY:
                return "emergency"          # an emergency never waits for more silence
            if silent_for >= cfg.early_silence_ms:
                return "early"
        elif silent_for >= cfg.early_silence_ms and self._partial_settled():
            return "early"
        if silent_for >= cfg.trailing_silence_ms:
            if self.speech_ms < cfg.min_speech_ms and not self.partial_text:
                self._forget_noise()
                return None
            return "silence"
        return None

    def _partial_settled(self) -> bool:
        # The recogniser must have decoded the pause itself (it lags the audio), and the
        # destination must have held while it did.
        assert self.silence_started_ms is not None
        cfg = self.config
        return (self.destination is not None
                and self.partial_heard_to_ms >= self.silence_started_ms + cfg.early_silence_ms
                and self.partial_heard_to_ms - self.destination_since_ms >= cfg.stable_ms
                and (self.destination == EMERGENCY or not ends_open(self.partial_text)))

    def _whole_decode_confident(self) -> bool:
        # A decode of everything the caller said so far (nothing voiced since), routing confidently
        # and, unless an emergency, not stopping on a word that leaves the sentence open.
        return (self.decoded_to_ms is not None and self.silence_started_ms is not None
                and self.decoded_to_ms >= self.silence_started_ms and self.destination is not None
                and (self.destination == EMERGENCY or not ends_open(self.partial_text)))

    def _forget_noise(self) -> None:
        self.speech_started_ms = None
        self.speech_ms = 0
        self._announced = False
        # `_paused` stays: the next voiced frame then says "resume", which withdraws a decode the
        # noise started, so it cannot stand in for the caller's real words later.
        self.decoded_to_ms = None
