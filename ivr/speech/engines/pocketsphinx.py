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
import time
from pathlib import Path

from ivr import metrics
from ivr.routing.rules import Rules
from ivr.speech import lm
from ivr.speech.audio import StreamResampler
from ivr.speech.engines.base import (EngineBusy, EngineUnavailable, Grammar, Partial, Result, SingleUse, Word,
                                     grammar_key, mean_confidence)
from ivr.speech.speech_gate import SpeechGate

log = logging.getLogger(__name__)

_DOMAIN = "_default"     # pocketsphinx's name for the search built from the configured `lm`
_FRAME_SECONDS = 0.01   # pocketsphinx frames are 10 ms
#: The bundled model is 16 kHz; phone audio is resampled up to it. Decoding at 8 kHz natively
#: (nfft 256, filterbank capped at 3.5 kHz) was measured at 65 % word error rate against 31 %
#: for resampling on the first 40 dev utterances, so resampling it is.
_MODEL_RATE = 16000
#: Starting cepstral mean for an 8 kHz phone line resampled to 16 kHz, measured by decoding the
#: dev utterances as μ-law phone audio (bench/asr.py). The model's own default ("40,3,-1,0,…")
#: describes wideband audio. Within a call, live CMN then adapts it to that caller's line.
_PHONE_CMN = "52.0,29.5,-32.2,37.6,-23.3,6.9,2.6,-20.0,12.4,-12.1,14.9,-5.1,-3.4"
#: Pool cap: pocketsphinx holds the GIL, so a process decodes on one core, and bench/streams.py
#: measured 8 real-time calls per process with the emergency watch (two decoders per call).
#: More decoders than that would only let every call fall behind, so the cap is one core's
#: worth: 16 decoders, ≈ 46 MB each (measured RSS). Run one worker per core; IVR_DECODE_POOL_MAX overrides.
DEFAULT_MAX_DECODERS = 16
#: How long a new call waits for a decoder when all are lent out, before the keypad fallback.
BORROW_WAIT_S = 1.0
#: The emergency watch: a second search over the same audio whose model repeats the rules'
#: emergency phrases and examples this many times, a second opinion for when the 1-best misses.
#: Weight 10: one ordinary call read as "robbing", which `ivr.speech.emergency` rejects as too
#: little support. Measured on the app's engine (with lm_extra.txt) through the live turn path
#: (bench/asr.py), the transcript alone already caught every emergency it caught (32 of 33 over the
#: dev, held-out and probe sets); the watch costs a second decode (bench/streams.py: 8 real-time
#: streams per process with it, 12 without). Earlier wins were on an engine without lm_extra.txt.
_WATCH = "emergency-watch"
_WATCH_WEIGHT = 10


class PocketsphinxEngine:
    """One language model + acoustic model configuration, a bounded pool of decoders using it."""

    name = "pocketsphinx"

    def __init__(self, rules: Rules | None, language: str = "en", *, cache_dir: str | Path,
                 extra_sentences: list[str] | None = None, decoder_options: dict | None = None,
                 initial_cmn: str = _PHONE_CMN, max_decoders: int = DEFAULT_MAX_DECODERS,
                 emergency_watch: bool = True) -> None:
        """`decoder_options` are extra pocketsphinx settings (e.g. {"lw": 9.0}) for tuning;
        the starting cepstral mean is `initial_cmn`, whatever `cmninit` they give.

        `max_decoders` caps the pool (each decoder holds ≈ 46 MB); `emergency_watch` decodes every
        utterance a second time with an emergency-biased model (see `_WATCH_WEIGHT`).
        """
        if language != "en":
            raise EngineUnavailable(f"pocketsphinx has only an English model bundled, not {language!r}; "
                                    "use Vosk (`ivr models download`) or Twilio for this language")
        if max_decoders < 1:
            raise EngineUnavailable(f"IVR_DECODE_POOL_MAX must be at least 1, not {max_decoders}")
        try:
            import pocketsphinx
        except ImportError as exc:  # the package is a dependency; a broken install says how to fix
            raise EngineUnavailable("pocketsphinx is not installed: pip install 'pocketsphinx>=5'") from exc
        self._ps = pocketsphinx
        self.language = language
        self.decode_rate = _MODEL_RATE
        self.max_decoders = max_decoders
        self._options = dict(decoder_options or {})
        model_dir = Path(pocketsphinx.get_model_path()) / "en-us"
        self._hmm = str(model_dir / "en-us")
        self._dict = str(model_dir / "cmudict-en-us.dict")
        self.vocabulary = _dictionary_words(Path(self._dict))
        extra = extra_sentences or []
        self.lm_path = self._build_lm(rules, extra, Path(cache_dir)) if rules else None
        watch = emergency_sentences(rules, language) if rules and emergency_watch else []
        self.watch_lm_path = self._build_lm(rules, extra + watch * _WATCH_WEIGHT, Path(cache_dir)) \
            if watch else None
        self._initial_cmn = ",".join(f"{float(x):.2f}" for x in initial_cmn.split(","))
        self._idle: list = []
        self._made = 0
        self._lock = threading.Condition()
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
        """The cepstral mean every call starts from: a telephone line's, as pocketsphinx's comma list.

        Deliberately the same for every call: learning it across calls made one caller's line
        change how the next caller was heard, and made results depend on call order.
        """
        return self._initial_cmn

    def warm(self, decoders: int | None = None) -> None:
        """Load `decoders` pool slots now (default: one call's worth) so the first call does not wait."""
        wanted = decoders if decoders is not None else 2 if self.watch_lm_path else 1
        loaded = [self._borrow(BORROW_WAIT_S) for _ in range(min(wanted, self.max_decoders))]
        for decoder in loaded:
            self._give_back(decoder)

    @property
    def busy(self) -> int:
        """Decoders lent out right now (for admins and benchmarks)."""
        with self._lock:
            return self._made - len(self._idle)

    def _new_decoder(self):  # -> pocketsphinx.Decoder
        options = dict(hmm=self._hmm, dict=self._dict, samprate=self.decode_rate, loglevel="FATAL")
        options.update(self._options)
        # The telephone mean is the configured starting point, so `reinit_feat` (see `_prepare`)
        # puts every call back on it.
        options["cmninit"] = self._initial_cmn
        if self.lm_path:
            options["lm"] = str(self.lm_path)
        decoder = self._ps.Decoder(**options)
        if self.watch_lm_path:
            decoder.add_lm_file(_WATCH, str(self.watch_lm_path))
        return decoder

    def _borrow(self, wait_s: float):
        """An idle decoder, a new one while under the cap, else wait up to `wait_s` for one.

        Raises `EngineBusy` when the pool stays full: the caller falls back to the keypad
        (stream) or a reprompt (recording) instead of the process growing without bound.
        """
        deadline = time.monotonic() + wait_s
        with self._lock:
            waited = not self._idle and self._made >= self.max_decoders
            while not self._idle and self._made >= self.max_decoders:
                left = deadline - time.monotonic()
                if left <= 0:
                    metrics.DECODER_WAITS.labels(outcome="busy").inc()
                    raise EngineBusy(f"all {self.max_decoders} pocketsphinx decoders are busy "
                                     "(raise IVR_DECODE_POOL_MAX or run another worker)")
                self._lock.wait(left)
            if waited:
                metrics.DECODER_WAITS.labels(outcome="got").inc()
            metrics.DECODERS_IN_USE.inc()
            if self._idle:
                return self._idle.pop()
            self._made += 1          # reserve the slot; load the model outside the lock
        try:
            return self._new_decoder()
        except BaseException:
            with self._lock:
                self._made -= 1
                self._lock.notify()
            metrics.DECODERS_IN_USE.dec()
            raise

    def _give_back(self, decoder) -> None:
        with self._lock:
            self._idle.append(decoder)
            self._lock.notify()
        metrics.DECODERS_IN_USE.dec()

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
        """A per-call recogniser; borrows a decoder (two with the emergency watch) until `finish`."""
        decoder = self._prepare(self._borrow(BORROW_WAIT_S), grammar)
        watch = None
        if self.watch_lm_path:
            try:
                # No waiting for the watch: under load a call keeps its main decoder and only
                # loses the second opinion (logged), never its turn.
                watch = self._prepare(self._borrow(0.0), None, _WATCH)
            except EngineBusy:
                log.warning("emergency watch skipped for one utterance: decoder pool full")
        return PocketsphinxRecognizer(self, decoder, sample_rate, watch)

    def _prepare(self, decoder, grammar: Grammar | None, search: str | None = None):
        # Every call starts from the line's average cepstral mean (`cmninit`), not the model's
        # wideband default (~20 points of routing accuracy lost on phone audio) nor anything a
        # previous caller left. `set_cmn` was not enough: it replaces the mean but not the rest
        # of live CMN's state (its running sums over earlier frames), so the same audio scored
        # differently after other calls. Rebuilding the front end (≈0.1 ms) from the config
        # leaves nothing of the last call behind: results equal a fresh decoder's, bit for bit.
        try:
            decoder.reinit_feat()
            decoder.activate_search(search or self._search_for(decoder, grammar))
        except BaseException:
            self._give_back(decoder)
            raise
        return decoder


class PocketsphinxRecognizer(SingleUse):
    """One utterance on borrowed decoder(s). `accept` returns a partial when the 1-best changed."""

    def __init__(self, engine: PocketsphinxEngine, decoder, sample_rate: int, watch=None) -> None:
        self.sample_rate = sample_rate
        self._engine = engine
        self._decoders = [decoder] + ([watch] if watch is not None else [])
        self._resampler = StreamResampler(sample_rate, engine.decode_rate)
        # The line before the first word (a prompt playing) must not set the cepstral mean.
        self._gate = SpeechGate(2 * engine.decode_rate)
        for each in self._decoders:
            each.start_utt()

    def accept(self, pcm16: bytes) -> Partial | None:
        """Decode a chunk of PCM16 at `sample_rate`."""
        self._check_open()
        audio = self._gate.push(pcm16, self._resampler.process(pcm16))
        if audio:
            for decoder in self._decoders:
                decoder.process_raw(audio, False, False)
        hyp = self._decoders[0].hyp()
        return self._changed(hyp.hypstr if hyp else "")

    def finish(self) -> Result:
        """Flush, end the utterance, return the decoders to the pool."""
        self._close()
        decoder = self._decoders[0]
        try:
            tail = self._gate.flush() + self._gate.push(b"", self._resampler.flush())
            for each in self._decoders:
                if tail:
                    each.process_raw(tail, False, False)
                each.end_utt()
            return self._result(decoder)
        finally:
            for each in self._decoders:
                self._engine._give_back(each)

    def _result(self, decoder) -> Result:
        watched = self._decoders[1].hyp() if len(self._decoders) > 1 else None
        hyp = decoder.hyp()
        text = hyp.hypstr if hyp else ""
        alternatives = (watched.hypstr,) if watched and watched.hypstr and watched.hypstr != text else ()
        if not text:
            return Result("", 0.0, alternatives=alternatives)
        skipped = self._gate.skipped_s    # times count from the start of the caller's audio
        words = tuple(
            # The Python binding already turns the lattice posterior into a probability.
            Word(seg.word.split("(")[0], skipped + seg.start_frame * _FRAME_SECONDS,
                 skipped + seg.end_frame * _FRAME_SECONDS, min(1.0, max(0.0, seg.prob)))
            for seg in decoder.seg() if not _is_filler(seg.word)
        )
        # Posterior word probabilities from the lattice: their mean is a fair utterance confidence.
        return Result(text, mean_confidence(words), words, alternatives)


def emergency_sentences(rules: Rules, language: str) -> list[str]:
    """The rules' emergency cue phrases and examples: what the watch's model is biased towards."""
    return list(rules.emergency.phrases.get(language, ())) + list(rules.emergency.examples.get(language, ()))


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
