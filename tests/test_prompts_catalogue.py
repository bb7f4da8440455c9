"""The prompt catalogue: shipped files complete in both languages, checks, filling. No audio."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from ivr.prompts.catalogue import REQUIRED_KEYS, PromptError, check_prompts, fill, load_catalogue
from ivr.prompts.fixed import fixed_texts
from ivr.voices import spell_digits

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "prompts"


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    """A writable copy of the shipped catalogues."""
    target = tmp_path / "prompts"
    shutil.copytree(PROMPTS, target)
    return target


def _replace_line(path: Path, startswith: str, new_line: str) -> int:
    """Replace the line starting with `startswith`; returns its 1-based number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines) if line.startswith(startswith))
    lines[number] = new_line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return number + 1


def test_shipped_catalogues_have_no_problems():
    assert check_prompts(PROMPTS, SimpleNamespace(languages=("en", "es"))) == []


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_prompt_the_flow_uses_exists(language):
    catalogue, _ = load_catalogue(PROMPTS, [language])
    assert set(REQUIRED_KEYS) <= set(catalogue[language])


def test_same_keys_in_both_languages():
    catalogue, _ = load_catalogue(PROMPTS)
    assert set(catalogue["en"]) == set(catalogue["es"])


def test_spanish_catalogue_is_spoken_only_in_spanish():
    catalogue, _ = load_catalogue(PROMPTS)
    assert {prompt.voice for prompt in catalogue["es"].values()} == {"es"}


def test_english_language_offer_is_spoken_in_spanish():
    catalogue, _ = load_catalogue(PROMPTS)
    offer = catalogue["en"]["choose_language"]
    assert offer.voice == "es"
    assert "español" in offer.text
    assert {p.voice for k, p in catalogue["en"].items() if k != "choose_language"} == {"en"}


def test_missing_prompt_is_reported_against_its_file(prompts_dir):
    _replace_line(prompts_dir / "es.yaml", "goodbye:", "")
    problems = check_prompts(prompts_dir)
    assert [(Path(p.path).name, p.line) for p in problems] == [("es.yaml", 0)]
    assert "'goodbye'" in problems[0].message and "missing in es" in problems[0].message


def test_prompt_nobody_wrote_is_reported_for_both_languages(prompts_dir):
    for language in ("en", "es"):
        _replace_line(prompts_dir / f"{language}.yaml", "voicemail_done:", "")
    problems = check_prompts(prompts_dir)
    assert sorted(Path(p.path).name for p in problems) == ["en.yaml", "es.yaml"]
    assert all("call flow needs it" in p.message for p in problems)


def test_extra_prompt_in_one_language_is_missing_in_the_other(prompts_dir):
    (prompts_dir / "en.yaml").write_text((prompts_dir / "en.yaml").read_text() + 'hold_music: "Please wait."\n')
    problems = check_prompts(prompts_dir)
    assert len(problems) == 1
    assert Path(problems[0].path).name == "es.yaml" and "en.yaml" in problems[0].message


def test_unknown_placeholder_points_at_its_line(prompts_dir):
    line = _replace_line(prompts_dir / "en.yaml", "busy:", 'busy: "{departmnet} is busy right now."')
    problems = check_prompts(prompts_dir)
    assert len(problems) == 1
    assert (Path(problems[0].path).name, problems[0].line) == ("en.yaml", line)
    assert "{departmnet}" in problems[0].message and "{department}" in problems[0].message
    assert str(problems[0]).startswith(f"{prompts_dir / 'en.yaml'}:{line}: ")


def test_malformed_braces_are_reported(prompts_dir):
    line = _replace_line(prompts_dir / "es.yaml", "busy:", 'busy: "La línea de {department está ocupada."')
    problems = check_prompts(prompts_dir)
    assert [(Path(p.path).name, p.line) for p in problems] == [("es.yaml", line)]


def test_invalid_yaml_is_reported_with_a_line(prompts_dir):
    line = _replace_line(prompts_dir / "en.yaml", "ask:", 'ask: "unterminated')
    problems = check_prompts(prompts_dir)
    assert len(problems) >= 1 and Path(problems[0].path).name == "en.yaml"
    assert problems[0].line >= line


def test_voice_of_an_unknown_language_is_reported(prompts_dir):
    _replace_line(prompts_dir / "en.yaml", "  voice: es", "  voice: fr")
    problems = check_prompts(prompts_dir)
    assert len(problems) == 1 and "voice 'fr'" in problems[0].message


def test_rules_languages_select_the_files(prompts_dir):
    problems = check_prompts(prompts_dir, SimpleNamespace(languages=("en", "es", "fr")))
    assert any(Path(p.path).name == "fr.yaml" and "cannot read" in p.message for p in problems)


def test_fill_replaces_placeholders():
    catalogue, _ = load_catalogue(PROMPTS)
    words = fill(catalogue["es"]["queue_position"], {"position": 3, "minutes": 5.0})
    assert words == "Usted es el número 3 en la fila. La espera es de unos 5 minutos."


def test_fill_without_a_value_is_a_clear_error():
    catalogue, _ = load_catalogue(PROMPTS)
    with pytest.raises(PromptError, match="needs hours"):
        fill(catalogue["en"]["after_hours"], {"department": "Sanitation"})


@pytest.mark.parametrize("number, spoken", [
    ("555-0123", "5 5 5, 0 1 2 3"),
    ("3125550101", "3 1 2, 5 5 5, 0 1 0 1"),
    ("+1 312 555 0101", "1, 3 1 2, 5 5 5, 0 1 0 1"),
    ("(312) 555-0101", "3 1 2, 5 5 5, 0 1 0 1"),
])
def test_phone_numbers_are_read_digit_by_digit(number, spoken):
    assert spell_digits(number) == spoken


def _rules():
    """A small stand-in for ivr.routing.rules.Rules with just what the expansion reads."""
    department = SimpleNamespace(name={"en": "Sanitation", "es": "Sanidad"}, hours={})
    option = SimpleNamespace(digit="1", label={"en": "Trash and recycling", "es": "Basura y reciclaje"},
                             department="sanitation", options=())
    return SimpleNamespace(
        languages=("en", "es"), default_language="en", departments={"sanitation": department},
        intents=(SimpleNamespace(description={"en": "a missed trash pickup", "es": "basura no recogida"},
                                 service_code="TRASH"),),
        topics=(SimpleNamespace(name={"en": "trash pickup", "es": "recolección de basura"}),),
        menu=(option,), emergency=SimpleNamespace(advisory={"en": "If this is an emergency, dial 911.",
                                                            "es": "Si es una emergencia, marque 911."}))


def test_fixed_texts_fill_what_the_rules_know():
    catalogue, _ = load_catalogue(PROMPTS)
    texts = {item.text for item in fixed_texts(catalogue["es"], "es", _rules(), lambda d, lang: "de lunes a viernes")}
    assert "Le comunico con Sanidad. Por favor, espere." in texts
    assert "Para Basura y reciclaje, oprima 1." in texts
    assert "Entiendo que llama por basura no recogida. ¿Es correcto? Diga sí o no. O oprima 1 para sí, 2 para no." in texts
    assert any(text.startswith("La oficina de Sanidad está cerrada ahora. Horario: de lunes a viernes") for text in texts)
    assert "Gracias. Su reporte sobre basura no recogida quedó registrado." in texts     # the report read back
    assert "Gracias. Le enviaremos noticias sobre recolección de basura por mensaje de texto." in texts
    assert "Puede reportarlo ahora y recibir un número de caso: oprima 1, o diga reportar." in texts
    assert not any("fila. La espera" in text for text in texts)  # per-call values are rendered on demand
    assert not any("número de caso es" in text for text in texts)


def test_fixed_texts_without_rules_are_placeholder_free():
    catalogue, _ = load_catalogue(PROMPTS)
    keys = {item.key for item in fixed_texts(catalogue["en"], "en")}
    assert "goodbye" in keys and "choose_language" in keys
    assert not keys & {"welcome", "transferring", "queue_position", "menu_option"}


@pytest.mark.parametrize("language, minutes, expected", [
    ("en", 1, "about one minute."), ("en", 6, "about 6 minutes."),
    ("es", 1, "de un minuto, más o menos."), ("es", 6, "de unos 6 minutos."),
])
def test_one_minute_is_grammatical(language, minutes, expected):
    catalogue, _ = load_catalogue(PROMPTS)
    assert fill(catalogue[language]["queue_position"], {"position": 2, "minutes": minutes}).endswith(expected)


def test_variant_on_a_placeholder_the_text_lacks_is_reported(prompts_dir):
    path = prompts_dir / "en.yaml"
    path.write_text(path.read_text().replace("if_minutes_is_1:", "if_position_is_1:").replace(
        'text: "You are number {position} in line.', 'text: "You are next in line.'), encoding="utf-8")
    problems = check_prompts(prompts_dir)
    assert len(problems) == 1 and "if_position_is_" in problems[0].message
