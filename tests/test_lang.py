"""Languages as data: ivr/lang/<code>.yaml holds what the line knows about a language.

The proof: a third language (French) comes from files alone — rules, prompts/fr.yaml and
lang/fr.yaml copied into a temporary directory — and a whole call is routed in it.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ivr.lang import LanguageError, builtin, load_language, parse_language
from ivr.routing.classify import Classifier, interpret_language, interpret_yes_no
from ivr.routing.hours import hours_text
from ivr.routing.load import load_rules, parse_rules
from ivr.routing.problems import ConfigError
from conftest import simulated_call

ROOT = Path(__file__).resolve().parent.parent
THIRD = ROOT / "tests" / "data" / "third_language"
# Tuesday 10 March 2026, 10:00 in Chicago: the departments are open.
OPEN = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def city(tmp_path: Path) -> Path:
    """A city directory made only of files: rules, lang/fr.yaml, prompts/{en,es,fr}.yaml."""
    shutil.copy(THIRD / "routing_rules.yaml", tmp_path / "routing_rules.yaml")
    shutil.copytree(THIRD / "lang", tmp_path / "lang")
    (tmp_path / "prompts").mkdir()
    for code in ("en", "es"):
        shutil.copy(ROOT / "prompts" / f"{code}.yaml", tmp_path / "prompts" / f"{code}.yaml")
    shutil.copy(THIRD / "prompts" / "fr.yaml", tmp_path / "prompts" / "fr.yaml")
    return tmp_path


def test_the_shipped_languages_are_files():
    english, spanish = builtin("en"), builtin("es")
    assert english.source.endswith("ivr/lang/en.yaml") and spanish.source.endswith("ivr/lang/es.yaml")
    assert english.name_in("es") == "inglés" and spanish.name_in("en") == "Spanish"
    assert english.locales["gather"] == "en-US" and spanish.locales["say"] == "es-MX"
    assert "the" in english.stop_words and "unos" in spanish.stop_words
    assert english.hours.days[0] == "Monday" and spanish.hours.days[6] == "domingo"


def test_a_third_language_routes_from_files_alone(city):
    rules = load_rules(city / "routing_rules.yaml")
    french = rules.language("fr")
    assert french.source == str(city / "lang" / "fr.yaml")
    classifier = Classifier(rules)
    pothole = classifier.classify("il y a un gros nid de poule dans ma rue", "fr")
    assert not pothole.emergency and pothole.top.department == "roads"
    assert classifier.classify("je n'ai plus d'eau au robinet", "fr").top.department == "water"
    assert classifier.classify("ma voisine ne respire plus", "fr").emergency
    assert interpret_language("français s'il vous plaît", None, rules) == "fr"
    assert interpret_yes_no("oui c'est ça", None, [french]) is True
    assert interpret_yes_no("non", None, [french]) is False
    assert hours_text(rules.departments["roads"], french) == "du lundi au vendredi, de 8:00 à 17:00"


def test_a_whole_call_in_the_third_language(city, tmp_path):
    from ivr import create_app

    app = create_app({
        "TESTING": True, "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.sqlite3'}",
        "IVR_RULES_PATH": str(city / "routing_rules.yaml"), "IVR_PROMPTS_DIR": str(city / "prompts"),
        "IVR_PUBLIC_URL": "https://ivr.example.test", "TWILIO_AUTH_TOKEN": "test-auth-token",
        "IVR_API_TOKEN": "test-api-token", "IVR_PROMPT_CACHE_DIR": str(tmp_path / "cache"),
        "IVR_CAPTURE": "twilio", "IVR_SPEECH_ENGINE": "twilio", "IVR_TTS": "off", "IVR_CLOCK": lambda: OPEN,
    })
    sim = simulated_call(app.test_client())
    sim.call()
    assert sim.last.status_code == 200
    assert "français" in sim.find("Gather").get("hints")      # the language's names, from its file
    sim.press("3")                                             # the rules' third language
    assert sim.find("Gather").get("language") == "fr-FR"
    assert sim.find("Say").get("language") == "fr-FR"
    assert "quel est l'objet de votre appel" in " ".join(sim.texts())
    sim.say("il y a un énorme nid de poule dans ma rue")
    assert "Je vous mets en relation avec Voirie" in " ".join(sim.texts())
    assert sim.find("Dial/Number").text == "+13125550101"
    agent = " ".join(sim.whisper().texts())                   # agents speak the first language
    assert "Language French" in agent and "nid de poule" in agent


def test_a_rules_language_without_a_file_is_a_clear_error(city):
    (city / "lang" / "fr.yaml").unlink()
    with pytest.raises(ConfigError) as caught:
        load_rules(city / "routing_rules.yaml")
    message = str(caught.value)
    assert "routing_rules.yaml:2" in message and "no language file for 'fr'" in message
    assert "fr.yaml" in message


def test_a_wrong_language_file_lists_every_problem(tmp_path):
    text = (THIRD / "lang" / "fr.yaml").read_text(encoding="utf-8")
    broken = text.replace("stemmer: suffixes", "stemmer: porter").replace(
        "days: [lundi, mardi, mercredi, jeudi, vendredi, samedi, dimanche]", "days: [lundi]")
    broken = broken.replace("negations: [ne, pas, jamais, personne, rien, aucun]", "negations: [ne, no]")
    with pytest.raises(LanguageError) as caught:
        parse_language(broken, "fr", "fr.yaml")
    message = str(caught.value)
    assert "'stemmer' must be one of english, suffixes, none" in message
    assert "'hours.days' must name 7 days" in message
    assert "quote them" in message                              # bare no is YAML's false
    with pytest.raises(LanguageError, match="'code' is 'fr' but the file is for 'pt'"):
        parse_language(text, "pt", "pt.yaml")


def test_admin_files_are_found_before_the_built_in_ones(tmp_path):
    english = (ROOT / "ivr" / "lang" / "en.yaml").read_text(encoding="utf-8")
    (tmp_path / "en.yaml").write_text(english.replace("day_range: \"{first} to {last}\"",
                                                      "day_range: \"{first} through {last}\""), encoding="utf-8")
    local = load_language("en", [tmp_path])
    assert local.hours.day_range == "{first} through {last}" and builtin("en").hours.day_range == "{first} to {last}"
    rules = parse_rules((ROOT / "routing_rules.yaml").read_text(encoding="utf-8"), "rules.yaml", [tmp_path])
    assert rules.language("en") is local


def test_speech_locales_of_a_third_language_come_from_its_file(city):
    from ivr.speech.engines.twilio import TwilioEngine
    from ivr.speech.engines.vosk import vosk_code
    from ivr.speech.service import SpeechService

    assert TwilioEngine("fr", [city / "lang"]).locale == "fr-FR"      # `gather` in lang/fr.yaml
    with pytest.raises(Exception, match="no Twilio speech locale is configured for 'fr'"):
        TwilioEngine("fr")                                              # no file: nothing in Python knows French
    config = {"IVR_RULES_PATH": str(city / "routing_rules.yaml"), "IVR_SPEECH_ENGINE": "twilio"}
    assert SpeechService(config, lambda: None, city / "cache").choose("fr") == "twilio"
    assert vosk_code("en") == "en-us" and vosk_code("fr", config) == "fr" and vosk_code("ko") == "ko"
