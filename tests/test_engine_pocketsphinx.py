"""The embedded English engine on real synthesised phone speech (piper → 8 kHz μ-law), no mocks."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import ROOT
from ivr.config import from_environment
from ivr.speech import lm
from ivr.speech.audio import read_wav
from ivr.speech.engines.base import EngineUnavailable, Grammar, Partial, Recognizer, Result
from ivr.speech.engines.pocketsphinx import PocketsphinxEngine, to_jsgf
from ivr.speech.grammars import load_grammar
from ivr.speech.service import SpeechService
from speechgen import stream_decode, synthesize_phone_audio

pytestmark = pytest.mark.speech
GRAMMARS = ROOT / "grammars"


#: An emergency whose last word the domain model mishears ("sparking" → "parking").
LIVE_WIRE = "a power line is down and sparking"


@pytest.fixture(scope="module")
def engine(rules, tmp_path_factory):
    """The engine a live call gets: built by the speech service from the default settings
    (domain model plus `grammars/en/lm_extra.txt`, emergency watch on), not a hand-made one."""
    return live_engine(rules, tmp_path_factory.mktemp("lm"))


def live_engine(rules, cache_dir) -> PocketsphinxEngine:
    config = {**from_environment({}), "IVR_SPEECH_ENGINE": "pocketsphinx"}
    engine = SpeechService(config, lambda: rules, cache_dir).engine_for("en")
    assert isinstance(engine, PocketsphinxEngine)
    return engine


def decode(engine, text: str, grammar: Grammar | None = None) -> tuple[Result, list[Partial]]:
    """Stream the phone audio for `text` in 20 ms frames, as a call would."""
    return stream_decode(engine, read_wav(synthesize_phone_audio(text)), grammar)


def test_free_speech_hears_the_routing_words(engine):
    result, partials = decode(engine, "I need to report a pothole near the library")
    assert "pothole" in result.text.split()
    assert result.text.startswith("i need to report")
    assert isinstance(engine.recognizer(8000), Recognizer)


def test_partials_grow_while_the_caller_speaks(engine):
    result, partials = decode(engine, "the water main broke and the street is flooding")
    assert len(partials) >= 3
    assert partials[0].text != partials[-1].text
    assert "water main" in result.text


def test_words_carry_timings_and_confidences(engine):
    result, _ = decode(engine, "my neighbor's dog barks all night")
    assert [w.word for w in result.words] == result.text.split()
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and starts[0] >= 0.2      # the file starts with 0.3 s of silence
    assert all(0.0 <= w.confidence <= 1.0 and w.end > w.start for w in result.words)
    assert 0.0 < result.confidence <= 1.0


@pytest.mark.parametrize("said", ["yes", "no", "yes that's right", "no that's wrong"])
def test_yes_no_grammar(engine, said):
    """The recogniser answers only with the grammar's phrases, and with the caller's meaning
    ("yep" for "yes" is fine; "no" for "yes" is not)."""
    from ivr.lang import builtin
    from ivr.routing.classify import interpret_yes_no

    grammar = load_grammar(GRAMMARS, "en", "yes_no")
    result, _ = decode(engine, said, grammar)
    assert result.text in grammar.phrases
    assert interpret_yes_no(result.text, None, [builtin("en")]) is said.startswith("yes")


def test_digit_grammar_allows_a_sequence(engine):
    result, _ = decode(engine, "three one four", load_grammar(GRAMMARS, "en", "digits"))
    assert result.text == "three one four"


def test_grammar_then_free_speech_on_the_same_pooled_decoder(rules, tmp_path):
    engine = PocketsphinxEngine(rules, cache_dir=tmp_path)
    decode(engine, "no", load_grammar(GRAMMARS, "en", "yes_no"))
    result, _ = decode(engine, "I need to report a pothole near the library")
    assert "pothole" in result.text.split()
    # One decoder plus the emergency watch's, each lent twice: the model loaded once per slot.
    assert len(engine._idle) == 2 and engine.busy == 0


def test_a_call_is_heard_the_same_whatever_calls_came_before(rules, tmp_path):
    """Pooled decoders must not carry one caller into the next: the same audio gives exactly the
    same result (words, timings, confidences, the watch's reading) on fresh decoders and after
    other calls, long and short, free speech and grammar, have used them."""
    engine = live_engine(rules, tmp_path)
    said = "a child fell in the pool and isn't moving"
    before, _ = decode(engine, said)
    for other in ["the water main broke and the street is flooding", "my neighbor's dog barks all night",
                  "I need to report a pothole near the library"]:
        decode(engine, other)
    decode(engine, "yes", load_grammar(GRAMMARS, "en", "yes_no"))
    assert engine._made == 2          # the same two decoders served every call above
    after, _ = decode(engine, said)
    assert after == before


@pytest.mark.parametrize("said", ["I smell gas in my kitchen", "a child fell in the pool and isn't moving"])
def test_the_live_engine_hears_an_emergency_as_one(engine, rules, said):
    """What the line does with these calls (transcript or watch), whatever the exact words heard.
    A hand-built engine without lm_extra.txt heard neither as an emergency; the app's does."""
    from ivr.routing.classify import Classifier
    from ivr.speech.emergency import emergency_in_alternatives

    classifier = Classifier(rules)
    result, _ = decode(engine, said)
    assert classifier.classify(result.text, "en").emergency or emergency_in_alternatives(classifier, result, "en")


def test_seconds_of_line_noise_before_the_caller_speaks_change_nothing(engine, rules):
    """On a barge-in stream the recogniser hears the line while the prompt plays. Three seconds of
    hiss used to drag the cepstral mean until "spray painted" became "to break into" (an
    emergency); now the meaning is the one heard without it, and word times include the wait."""
    from ivr.routing.classify import Classifier

    said = "someone spray painted my garage door and I want to file a report"
    hiss = np.random.default_rng(7).normal(0.0, 30.0, 3 * 8000).astype("<i2").tobytes()
    audio = read_wav(synthesize_phone_audio(said))
    quiet, _ = decode(engine, said)
    recognizer = engine.recognizer(8000)
    pcm = hiss + audio.pcm16
    for start in range(0, len(pcm), 320):
        recognizer.accept(pcm[start:start + 320])
    late = recognizer.finish()
    classifier = Classifier(rules)
    heard = [classifier.classify(r.text, "en") for r in (quiet, late)]
    assert not heard[1].emergency
    assert heard[1].top.department == heard[0].top.department == "police"
    assert late.text == quiet.text       # the hiss changed nothing at all (it used to change words)
    assert late.words[0].start == pytest.approx(quiet.words[0].start + 3.0, abs=0.05)


def test_parallel_calls_each_get_their_own_decoder(engine):
    texts = ["the water main broke and the street is flooding", "my neighbor's dog barks all night"]
    results: dict[str, str] = {}

    def run(text: str) -> None:
        results[text] = decode(engine, text)[0].text

    threads = [threading.Thread(target=run, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "water main" in results[texts[0]]
    assert "dog" in results[texts[1]].split()


def test_silence_gives_an_empty_result(engine):
    recognizer = engine.recognizer(8000)
    assert recognizer.accept(b"\0\0" * 8000) is None
    assert recognizer.finish() == Result("", 0.0)
    with pytest.raises(RuntimeError, match="already finished"):
        recognizer.finish()


def test_domain_model_is_cached_by_the_rules_hash(rules, engine, tmp_path):
    first = PocketsphinxEngine(rules, cache_dir=tmp_path)
    stamp = first.lm_path.stat().st_mtime_ns
    again = PocketsphinxEngine(rules, cache_dir=tmp_path)
    assert again.lm_path == first.lm_path and again.lm_path.stat().st_mtime_ns == stamp
    changed = PocketsphinxEngine(rules, cache_dir=tmp_path, extra_sentences=["the fountain is dry"])
    assert changed.lm_path != first.lm_path
    assert "fountain" in changed.lm_path.read_text()


def test_grammar_words_outside_the_dictionary_are_dropped_or_refused(engine):
    jsgf = to_jsgf(Grammar("t", ("yes", "blorptastic")), engine.vocabulary)
    assert "yes" in jsgf and "blorptastic" not in jsgf
    with pytest.raises(EngineUnavailable, match="no phrase is in the pronunciation dictionary"):
        to_jsgf(Grammar("t", ("blorptastic",)), engine.vocabulary)


def test_only_english_is_bundled(rules, tmp_path):
    with pytest.raises(EngineUnavailable, match="only an English model bundled"):
        PocketsphinxEngine(rules, "es", cache_dir=tmp_path)


def test_arpa_model_is_well_formed():
    text = lm.build_arpa(["a pothole on main street", "a street light is out"], vocabulary=None)
    counts = {line.split("=")[0]: int(line.split("=")[1]) for line in text.splitlines() if line.startswith("ngram ")}
    sections = text.split("\\")
    for order in (1, 2, 3):
        body = text.split(f"\\{order}-grams:\n")[1].split("\n\n")[0].strip().splitlines()
        assert len(body) == counts[f"ngram {order}"]
    assert sections[-2].strip() == "end"
    # Unigram probabilities (excluding <s>) sum to one.
    unigrams = text.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()
    total = sum(10 ** float(line.split("\t")[0]) for line in unigrams if "\t<s>" not in line)
    assert total == pytest.approx(1.0, abs=1e-3)


def test_normalize_spells_digits_and_drops_punctuation():
    assert lm.normalize("I'm at 221 Elm St., OK?") == ["i'm", "at", "two", "two", "one", "elm", "st", "ok"]


def test_an_edited_grammar_is_recompiled_under_the_same_name(engine):
    before, _ = decode(engine, "no", Grammar("en/edited", ("yes", "okay")))
    after, _ = decode(engine, "no", Grammar("en/edited", ("yes", "no")))
    assert before.text != "no" and after.text == "no"


def test_the_pool_is_capped_and_a_waiting_call_gets_the_freed_decoder(rules, tmp_path):
    engine = PocketsphinxEngine(rules, cache_dir=tmp_path, max_decoders=1)
    first = engine.recognizer(8000)            # the only decoder; the watch is skipped, not waited for
    with pytest.raises(EngineUnavailable, match="all 1 pocketsphinx decoders are busy"):
        engine.recognizer(8000)
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(engine.recognizer(8000)))
    waiter.start()
    first.finish()
    waiter.join(timeout=5)
    assert len(got) == 1 and engine.busy == 1 and engine._made == 1
    got[0].finish()
    assert engine.busy == 0


def test_pool_size_must_be_positive(rules, tmp_path):
    with pytest.raises(EngineUnavailable, match="IVR_DECODE_POOL_MAX must be at least 1"):
        PocketsphinxEngine(rules, cache_dir=tmp_path, max_decoders=0)


def test_emergency_watch_hears_an_emergency_the_domain_model_mishears(engine, rules):
    """The domain model hears "sparking" as "parking" (a parking call!); the watch, biased to the
    rules' emergency phrases, hears the live wire — and its reading is kept beside the 1-best."""
    from ivr.routing.classify import Classifier
    from ivr.speech.emergency import emergency_in_alternatives

    classifier = Classifier(rules)
    result, _ = decode(engine, LIVE_WIRE)
    assert any("sparking" in reading for reading in result.alternatives)
    why = emergency_in_alternatives(classifier, result, "en")
    assert why is not None and "emergency watch" in why and "power line" in why


def test_emergency_watch_stays_quiet_on_an_ordinary_call(engine, rules):
    from ivr.routing.classify import Classifier
    from ivr.speech.emergency import emergency_in_alternatives

    result, _ = decode(engine, "the deli on Main Street had mouse droppings")
    assert emergency_in_alternatives(Classifier(rules), result, "en") is None


def test_without_the_watch_one_decoder_serves_a_call(rules, tmp_path):
    engine = PocketsphinxEngine(rules, cache_dir=tmp_path, emergency_watch=False)
    result, _ = decode(engine, LIVE_WIRE)
    assert result.alternatives == () and engine._made == 1
