"""One language's voice on the line: engine, lexicon and style → 8 kHz μ-law WAV, or <Say>.

A `Speaker` is what the line uses to say anything in one language. The text goes through the
same steps whatever the engine: the admins' pronunciations (IPA for engines that read it,
respelling otherwise), phone and case numbers digit by digit, cut into pieces with pauses,
synthesised, levelled and encoded for the phone. `key(text)` hashes the result of those
steps plus the engine's id, so a changed lexicon entry, style rule, voice or rate gives a new
cache file and nothing else does. `say_text(text)` is the same text for Twilio's <Say>.

`speakers_for(config, languages)` picks each language's engine from IVR_TTS_ENGINE_<LANG>,
falling back in the order callers need: the preferred engine, then pyttsx3, then <Say>.
An engine whose voice speaks another language is never used: Spanish callers hear Spanish.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ivr.speech.audio import resample
from ivr.voices import style, telephone
from ivr.voices.engine import Engine, TTSError
from ivr.voices.lexicon import Lexicon
from ivr.voices.piper_engine import PACKAGED_VOICE, PiperEngine, installed_voices
from ivr.lang import dirs_beside, locale
from ivr.voices.pyttsx3_engine import Pyttsx3Engine

log = logging.getLogger(__name__)

ENGINES = ("piper", "pyttsx3", "say")
#: Synthesised pieces kept per speaker (a piece is ~1-3 s: 30-100 kB as 8 kHz float32; ≤ ~10 MB).
PIECES_KEPT = 128
#: Cache names remembered per speaker: every webhook names one to three prompts, and working a
#: name out (lexicon, number rules, pieces, SHA-256) cost more than the rest of a <Play>.
KEYS_KEPT = 4096
#: <Say voice="Family.Name"> families that read SSML (<sub>, <phoneme>, <say-as>).
SSML_VOICE_FAMILIES = {"Polly", "Google"}


@dataclass
class Speaker:
    """How the line speaks one language: a rendering engine (None → <Say> only) and <Say>."""
    language: str
    engine: Engine | None
    say_language: str
    say_voice: str = ""
    lexicon: Callable[[], Lexicon] = field(default=Lexicon)
    #: Why preferred engines were passed over, e.g. "piper: no Spanish voice installed".
    skipped: tuple[str, ...] = ()
    #: Recently synthesised pieces: prompts share many ("Please hold.", "Is that right?", "Say yes
    #: or no."), and synthesis is deterministic, so a piece is never synthesised twice in a build.
    _pieces: OrderedDict = field(default_factory=OrderedDict, repr=False, compare=False)
    _pieces_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: text → (the lexicon it was named with, cache name); a reloaded lexicon names afresh.
    _keys: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def engine_name(self) -> str:
        return self.engine.id.split(":", 1)[0] if self.engine is not None else "say"

    def spoken(self, text: str, *, phonemes: bool | None = None, lexicon: Lexicon | None = None) -> str:
        """The words after the lexicon and the number rules (IPA blocks when the engine reads them)."""
        use_phonemes = bool(self.engine and self.engine.phonemes) if phonemes is None else phonemes
        lexicon = lexicon if lexicon is not None else self.lexicon()
        return style.numbers_digit_by_digit(lexicon.apply(text, phonemes=use_phonemes))

    def pieces(self, text: str, lexicon: Lexicon | None = None) -> list[style.Piece]:
        """What the engine is asked to say, piece by piece (the whole text for engines that do not split)."""
        splits = self.engine is None or self.engine.splits
        cut = style.pieces(self.spoken(text, lexicon=lexicon), digits_apart=splits)
        if not splits and cut:
            slow = any(piece.slow for piece in cut)
            return [style.Piece(" ".join(piece.text for piece in cut), slow, 0.0)]
        return cut

    def key(self, text: str) -> str:
        """Cache name of `text` as this speaker renders it (32 hex digits).

        Remembered per text until the lexicon changes: the engine, the style rules and the level
        are fixed for the speaker's life, so the lexicon is the only input that can move."""
        lexicon = self.lexicon()
        remembered = self._keys.get(text)
        if remembered is not None and (remembered[0] is lexicon or remembered[0] == lexicon):
            return remembered[1]
        engine = self.engine.id if self.engine is not None else "say"
        plan = "\n".join(f"{p.text}\t{int(p.slow)}\t{p.pause_after_s:g}" for p in self.pieces(text, lexicon))
        material = f"{engine}\n{style.VERSION}\n{style.SLOW:g}\n{telephone.TARGET_DBFS:g}\n{plan}"
        name = hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]
        if len(self._keys) >= KEYS_KEPT:
            self._keys.clear()   # prompts with many different values (queue positions): start over
        self._keys[text] = (lexicon, name)
        return name

    def warm(self) -> None:
        """Load the engine, and synthesise the ten pieces every number read digit by digit is made
        of (style.pieces), so the first case number read back costs no synthesis either."""
        load = getattr(self.engine, "load", None)
        if load is not None:
            load()
        if self.engine is not None and self.engine.splits:
            for digit in "0123456789":
                self._synthesized(digit, style.SLOW)    # digits are in a sentence with a number: slow

    def render(self, text: str) -> bytes:
        """`text` as an 8 kHz μ-law WAV. Raises TTSError (no engine, engine failure, silence)."""
        if self.engine is None:
            raise TTSError(f"no rendering engine for '{self.language}' ({'; '.join(self.skipped) or 'say only'})")
        cut = self.pieces(text)
        if not cut:
            raise TTSError("nothing to say: the text is empty")
        parts = []
        for piece in cut:
            samples, rate = self._synthesized(piece.text, style.SLOW if piece.slow else 1.0)
            parts.append((samples, rate, piece.pause_after_s))
        try:
            return telephone.phone_wav(telephone.assemble(parts, style.LEAD_S, style.TAIL_S))
        except telephone.SilentAudio as exc:
            raise TTSError(f"{self.engine.id} {exc}") from None

    def _synthesized(self, text: str, slowness: float) -> tuple[Any, int]:
        assert self.engine is not None
        key = (self.engine.id, text, slowness)
        with self._pieces_lock:
            if key in self._pieces:
                self._pieces.move_to_end(key)
                return self._pieces[key]
        samples, rate = self.engine.synthesize(text, slowness)
        # Kept at the phone's rate: a third of Piper's 22 kHz in memory, and resampled only once.
        result = (resample(samples, rate, telephone.RATE), telephone.RATE)
        with self._pieces_lock:
            self._pieces[key] = result
            while len(self._pieces) > PIECES_KEPT:
                self._pieces.popitem(last=False)
        return result

    def say_text(self, text: str) -> str:
        """`text` as a <Say> voice without SSML should read it: respelled, numbers digit by digit."""
        return self.spoken(text, phonemes=False)

    @property
    def say_ssml(self) -> bool:
        """True when the <Say> voice reads SSML (Amazon Polly and Google voices through Twilio)."""
        return self.say_voice.split(".", 1)[0] in SSML_VOICE_FAMILIES

    def say_into(self, verb: Any, text: str) -> None:
        """Append `text` to a TwiML verb as <Say>, pronounced like the rendered prompts.

        With an SSML voice the words stay as written (what `ivr call` and the logs show) and the
        lexicon becomes <sub alias>, <phoneme ph> and <say-as digits>; phone and case numbers
        become <say-as telephone|digits>. Other voices get the respelled text.
        """
        attributes = {"language": self.say_language, **({"voice": self.say_voice} if self.say_voice else {})}
        if not self.say_ssml:
            verb.say(self.say_text(text), **attributes)
            return
        say = verb.say(None, **attributes)
        for segment in self.lexicon().segments(text):
            if isinstance(segment, tuple):
                written, entry = segment
                if entry.phonemes:
                    say.phoneme(written, alphabet="ipa", ph=entry.phonemes)
                elif entry.say.replace(" ", "").isdigit():
                    say.say_as(written, interpret_as="digits")
                else:
                    say.sub(written, alias=entry.say)
                continue
            for span in style.number_spans(segment):
                if isinstance(span, tuple):
                    say.say_as(span[0], interpret_as=span[1])
                else:
                    say.append(span)


def _setting(config: Mapping[str, Any], name: str, language: str, default: Any = None) -> Any:
    value = config.get(f"IVR_{name}_{language.upper()}")
    if value in (None, ""):
        value = config.get(f"IVR_{name}")
    return default if value in (None, "") else value


def _locale(config: Mapping[str, Any], language: str, kind: str) -> str | None:
    """A locale from the language's file (lang/ beside the rules first, then ivr/lang/)."""
    return locale(language, kind, dirs_beside(config.get("IVR_RULES_PATH")))


def _piper(config: Mapping[str, Any], language: str) -> tuple[Engine | None, str]:
    voices_dir = piper_voices_dir(config)
    name = _setting(config, "PIPER_VOICE", language)
    if not name:
        matching = [voice for voice, lang in installed_voices(voices_dir) if lang == language]
        if not matching:
            example = _locale(config, language, "piper_voice") or "<voice>"
            return None, (f"piper: no {language} voice installed (ivr voices download <voice>, e.g. "
                          f"{example})")
        name = PACKAGED_VOICE if PACKAGED_VOICE in matching else matching[0]
    engine = PiperEngine(str(name), voices_dir, float(_setting(config, "PIPER_LENGTH_SCALE", language, 1.0)))
    problem = engine.problem()
    if problem:
        return None, f"piper: {problem}"
    if engine.language != language:
        return None, f"piper: voice {name} speaks '{engine.language}', not '{language}'"
    return engine, ""


def _pyttsx3(config: Mapping[str, Any], language: str) -> tuple[Engine | None, str]:
    voice = str(config.get(f"IVR_TTS_VOICE_{language.upper()}") or _locale(config, language, "tts_voice") or "")
    if not voice:
        return None, f"pyttsx3: no voice for '{language}' (set IVR_TTS_VOICE_{language.upper()})"
    engine = Pyttsx3Engine(voice, int(config.get("IVR_TTS_RATE", 150)), language)
    problem = engine.problem()
    return (None, f"pyttsx3: {problem}") if problem else (engine, "")


def speaker_for(config: Mapping[str, Any], language: str,
            lexicon: Callable[[], Lexicon] = Lexicon) -> Speaker:
    """The speaker of `language`: IVR_TTS_ENGINE_<LANG> (default piper), then pyttsx3, then <Say>."""
    preferred = str(_setting(config, "TTS_ENGINE", language, "piper")).lower()
    if str(config.get("IVR_TTS", "")).lower() in {"off", "none", "0", "false", "say"}:
        preferred = "say"     # rendering switched off (tests of the call flow read the words)
    if preferred not in ENGINES:
        raise ValueError(f"IVR_TTS_ENGINE_{language.upper()}={preferred!r}: use one of {', '.join(ENGINES)}")
    chain = ENGINES[ENGINES.index(preferred):]
    engine, skipped = None, []
    for name in chain:
        if name == "say":
            break
        engine, why = (_piper if name == "piper" else _pyttsx3)(config, language)
        if engine is not None:
            break
        skipped.append(why)
    # <Say language> and <Say voice> (Amazon Polly neural voices through Twilio) come from the language
    # file's locales; IVR_SAY_LANGUAGE_<LANG> / IVR_SAY_VOICE_<LANG> override ("" = Twilio's default voice).
    say_language = str(config.get(f"IVR_SAY_LANGUAGE_{language.upper()}") or _locale(config, language, "say") or language)
    say_voice = config.get(f"IVR_SAY_VOICE_{language.upper()}")
    say_voice = (_locale(config, language, "say_voice") or "") if say_voice is None else str(say_voice)
    return Speaker(language, engine, say_language, say_voice, lexicon, tuple(skipped))


def speakers_for(config: Mapping[str, Any], languages: list[str],
             lexicons: Callable[[str], Lexicon] | None = None) -> dict[str, Speaker]:
    """A speaker per language; `lexicons(language)` gives the current pronunciations."""
    result = {}
    for language in languages:
        current = (lambda lang=language: lexicons(lang)) if lexicons else Lexicon
        result[language] = speaker_for(config, language, current)
        if result[language].skipped:
            log.info("voice for %s: %s (skipped %s)", language, result[language].engine_name,
                     "; ".join(result[language].skipped))
    return result


def piper_voices_dir(config: Mapping[str, Any]) -> Path | None:
    """Where Piper voices live: IVR_PIPER_VOICES_DIR, else <IVR_MODELS_DIR>/piper."""
    if config.get("IVR_PIPER_VOICES_DIR"):
        return Path(config["IVR_PIPER_VOICES_DIR"])
    return Path(config["IVR_MODELS_DIR"]) / "piper" if config.get("IVR_MODELS_DIR") else None
