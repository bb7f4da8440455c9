"""Emergency evidence beyond the 1-best: "did another reading of this audio say emergency?".

The embedded engine decodes every utterance twice (see `PocketsphinxEngine`, "emergency watch"):
once with the domain model (the 1-best transcript, which routing reads) and once with a model
biased towards the rules' emergency phrases. The second reading is in `Result.alternatives`.
A false emergency costs a citizen their call, so an alternative only counts when it is clearly
supported: its emergency cues must add up to at least `MIN_CUE_WORDS` words ("fell in the pool",
"on fire", or two one-word cues), because one short word ("gun", "robbing") is what a biased model
produces from noise. Pure: no I/O, the classifier is passed in.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from ivr.speech.engines.base import Result

#: Measured on the dev and held-out sets (bench/asr.py): one-word readings were the only false
#: emergencies; every emergency the watch recovered had a cue of two words or more.
MIN_CUE_WORDS = 2


class _Classifies(Protocol):
    def classify(self, text: str, language: str): ...   # -> ivr.routing.classify.Classification


def supported_cues(cues: Sequence[str]) -> bool:
    """Whether the cue phrases heard are enough evidence on their own (see MIN_CUE_WORDS)."""
    return sum(len(cue.split()) for cue in dict.fromkeys(cues)) >= MIN_CUE_WORDS


def emergency_in_alternatives(classifier: _Classifies, result: Result | None, language: str) -> str | None:
    """Why an alternative reading of the audio is an emergency (for the decision's reason), or None.

    None too when the 1-best already is one (the classifier of the transcript will say so) or the
    engine gave no alternatives (Vosk, Twilio).
    """
    if result is None or not result.alternatives:
        return None
    for text in result.alternatives:
        reading = classifier.classify(text, language)
        cues = tuple(getattr(reading, "cues", ()))
        if reading.emergency and supported_cues(cues):
            heard = ", ".join(f"'{cue}'" for cue in cues[:3])
            return f"the recogniser's emergency watch heard {heard} (in {text!r})"
    return None
