"""Embedded English recogniser: pocketsphinx 5 with its bundled en-us model, biased to the city.

Works on a fresh machine with no download. Accuracy comes from the domain language model
(`ivr.speech.lm`, built from the routing rules and cached on disk by a hash of its corpus) and from
JSGF grammars for closed answers (yes/no, digits). A pocketsphinx `Decoder` owns its acoustic model
and cannot be shared between threads, so the engine keeps a pool of decoders loaded once and lent
to one call at a time: model loading happens per pool slot, never per call.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from ivr.routing.rules import Rules
from ivr.speech import lm
from ivr.speech.audio import StreamResampler
from ivr.speech.engines.base import EngineUnavailable, Grammar, Partial, Result, Word, grammar_key

log = logging.getLogger(__name__)

_DOMAIN = "_default"     # pocketsphinx's name for the search built from the configured `lm`
_FRAME_SECONDS = 0.01   # pocketsphinx frames are 10 ms
#: The bundled model is 16 kHz; phone audio is resampled up to it. Decoding at 8 kHz natively
#: (nfft 256, filterbank capped at 3.5 kHz) was measured at 65 % word error rate against 31 %
#: for resampling on the first 40 dev utterances, so resampling it is.
_MODEL_RATE = 16000
#: Starting cepstral mean for an 8 kHz phone line resampled to 16 kHz, measured by decoding the
#: dev utterances as μ-law phone audio (bench/asr.py). The model's own default ("40,3,-1,0,…")
#: describes wideband audio. The engine then adapts it to the real line call by call.
_PHONE_CMN = "52.0,29.5,-32.2,37.6,-23.3,6.9,2.6,-20.0,12.4,-12.1,14.9,-5.1,-3.4"


class PocketsphinxEngine:
    """One language model + acoustic model configuration, a pool of decoders using it."""

    name = "pocketsphinx"

    def __init__(self, rules: Rules | None, language: str = "en", *, cache_dir: str | Path,
                 extra_sentences: list[str] | None = None, decoder_options: dict | None = None,
                 initial_cmn: str = _PHONE_CMN) -> None:
        """`decoder_options` are extra pocketsphinx settings (e.g. {"lw": 9.0}) for tuning."""
        if language != "en":
            raise EngineUnavailable(f"pocketsphinx has only an English model bundled, not {language!r}; "
                                    "use Vosk (`ivr models download`) or Twilio for this language")
        try:
            import pocketsphinx
        except ImportError as exc:  # the package is a dependency; a broken install says how to fix
            raise EngineUnavailable("pocketsphinx is not installed: pip install 'pocketsphinx>=5'") from exc
        self._ps = pocketsphinx
        self.language = language
        self.decode_rate = _MODEL_RATE
        self._options = dict(decoder_options or {})
        model_dir = Path(pocketsphinx.get_model_path()) / "en-us"
        self._hmm = str(model_dir / "en-us")
        self._dict = str(model_dir / "cmudict-en-us.dict")
        self.vocabulary = _dictionary_words(Path(self._dict))
        self.lm_path = self._build_lm(rules, extra_sentences or [], Path(cache_dir)) if rules else None
        self._cmn = [float(x) for x in initial_cmn.split(",")]
        self._idle: list = []
        self._lock = threading.Lock()
        self._grammar_names: dict[int, set[str]] = {}

    def _build_lm(self, rules: Rules, extra: list[str], cache_dir: Path) -> Path:
        corpus = lm.rules_corpus(rules, self.language) + extra
        path = cache_dir / f"pocketsphinx-{self.language}-{lm.corpus_hash(corpus)}.arpa"
        if not path.exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_text(lm.build_arpa(corpus, self.vocabulary), encoding="utf-8")
            tmp.replace(path)   # atomic: another process never loads a half-written model
            log.info("built domain language model %s", path.name)
        return path

    @property
    def channel_cmn(self) -> str:
        """The running average cepstral mean of this line, as pocketsphinx's comma list."""
        with self._lock:
            return ",".join(f"{x:.2f}" for x in self._cmn)

    def _learn_cmn(self, decoder) -> None:
        """Blend one finished call's cepstral mean into the line average (slow, so one odd call barely moves it)."""
        observed = [float(x) for x in decoder.get_cmn(False).split(",")]
        with self._lock:
            self._cmn = [0.9 * old + 0.1 * new for old, new in zip(self._cmn, observed)]

    def warm(self, decoders: int = 1) -> None:
        """Load `decoders` pool slots now so the first calls do not wait for model loading."""
        loaded = [self._borrow() for _ in range(decoders)]
        for decoder in loaded:
            self._give_back(decoder)

    def _new_decoder(self):  # -> pocketsphinx.Decoder
        options = dict(hmm=self._hmm, dict=self._dict, samprate=self.decode_rate, loglevel="FATAL")
        options.update(self._options)
        if self.lm_path:
            options["lm"] = str(self.lm_path)
        return self._ps.Decoder(**options)

    def _borrow(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_decoder()

    def _give_back(self, decoder) -> None:
        with self._lock:
            self._idle.append(decoder)

    def _search_for(self, decoder, grammar: Grammar | None) -> str:
        """Name of the decoder search for `grammar`, compiling it into this decoder on first use."""
        if grammar is None:
            return _DOMAIN
        # Keyed by content too: an admin may edit a grammar file while decoders keep old searches.
        search = f"{grammar.name}#{grammar_key(grammar)}"
        known = self._grammar_names.setdefault(id(decoder), set())
        if search not in known:
            decoder.add_jsgf_string(search, to_jsgf(grammar, self.vocabulary))
            known.add(search)
        return search

    def recognizer(self, sample_rate: int, grammar: Grammar | None = None) -> "PocketsphinxRecognizer":
        """A per-call recogniser; borrows a decoder from the pool until `finish`."""
        decoder = self._borrow()
        # Start every call from the line's average cepstral mean, not the previous caller's
        # (which a pooled decoder would carry) nor the model's wideband default (which costs
        # ~20 points of routing accuracy on phone audio: the line has nothing above 4 kHz).
        decoder.set_cmn(self.channel_cmn)
        decoder.activate_search(self._search_for(decoder, grammar))
        return PocketsphinxRecognizer(self, decoder, sample_rate)


class PocketsphinxRecognizer:
    """One utterance on a borrowed decoder. `accept` returns a partial when the text changed."""

    def __init__(self, engine: PocketsphinxEngine, decoder, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._engine = engine
        self._decoder = decoder
        self._resampler = StreamResampler(sample_rate, engine.decode_rate)
        self._text = ""
        self._done = False
        decoder.start_utt()

    def accept(self, pcm16: bytes) -> Partial | None:
        """Decode a chunk of PCM16 at `sample_rate`."""
        if self._done:
            raise RuntimeError("recognizer already finished")
        audio = self._resampler.process(pcm16)
        if audio:
            self._decoder.process_raw(audio, False, False)
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp else ""
        if text != self._text:
            self._text = text
            return Partial(text)
        return None

    def finish(self) -> Result:
        """Flush, end the utterance, return the decoder to the pool."""
        if self._done:
            raise RuntimeError("recognizer already finished")
        self._done = True
        decoder = self._decoder
        try:
            tail = self._resampler.flush()
            if tail:
                decoder.process_raw(tail, False, False)
            decoder.end_utt()
            result = self._result(decoder)
            if result.text:
                self._engine._learn_cmn(decoder)
            return result
        finally:
            self._engine._give_back(decoder)

    def _result(self, decoder) -> Result:
        hyp = decoder.hyp()
        if hyp is None or not hyp.hypstr:
            return Result("", 0.0)
        words = tuple(
            # The Python binding already turns the lattice posterior into a probability.
            Word(seg.word.split("(")[0], seg.start_frame * _FRAME_SECONDS, seg.end_frame * _FRAME_SECONDS,
                 min(1.0, max(0.0, seg.prob)))
            for seg in decoder.seg() if not _is_filler(seg.word)
        )
        # Posterior word probabilities from the lattice: their mean is a fair utterance confidence.
        confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
        return Result(hyp.hypstr, round(confidence, 3), words)


def _is_filler(word: str) -> bool:
    return word.startswith("<") or word.startswith("[") or word.startswith("+")


def _dictionary_words(path: Path) -> set[str]:
    """Words the pronunciation dictionary can decode (alternate pronunciations folded)."""
    words = set()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            head = line.split(" ", 1)[0]
            words.add(head.split("(", 1)[0])
    return words


def to_jsgf(grammar: Grammar, vocabulary: set[str]) -> str:
    """A JSGF grammar accepting one phrase (or, with `repeat`, a sequence) of `grammar`."""
    phrases = [p for p in grammar.phrases if all(w in vocabulary for w in p.split())]
    if not phrases:
        raise EngineUnavailable(f"grammar {grammar.name}: no phrase is in the pronunciation dictionary")
    body = " | ".join(phrases)
    rule = f"( {body} )+" if grammar.repeat else f"( {body} )"
    return f"#JSGF V1.0;\ngrammar g;\npublic <answer> = {rule};\n"
