"""What the caller hears from a TwiML document, as words where they can be known.

The line sends audio as well as text: a `<Play>` URL (a rendered prompt) or prompts played on a
Media Stream (named by `<Parameter name="prompt(s)">`). The simulator knows nothing of our
prompts, so whoever knows them passes the two resolvers below; without them (or when they
return None) the caller "hears" a note saying what was played. One exception: a prompt not
rendered yet is played from a URL that carries its words (ivr.prompts.signed), read here.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any, Callable, Mapping

from ivr.prompts import words_in_url

#: What the caller hears, as words: (audio URL) → words, and (prompt key, language, values) →
#: words for a Media Stream's `<Parameter name="prompts">`. None: not known, show what it is.
AudioWords = Callable[[str], "str | None"]
PromptWords = Callable[[str, str, Mapping[str, Any]], "str | None"]


def heard_in(doc: ET.Element, absolute: Callable[[str], str], audio_words: AudioWords | None,
             prompt_words: PromptWords | None) -> list[str]:
    """In document order: <Say> text, <Play> audio (its URL made `absolute`, then through
    `audio_words`), a Media Stream's prompts (through `prompt_words`)."""
    heard: list[str] = []
    for element in doc.iter():
        if element.tag == "Say" and "".join(element.itertext()).strip():
            heard.append("".join(element.itertext()).strip())   # SSML children hold words too
        elif element.tag == "Play" and element.text:
            url = absolute(element.text.strip())
            words = (audio_words(url) if audio_words else None) or words_in_url(url)
            heard.append(words or f"♪ (a recording: {element.text.strip().rsplit('/', 1)[-1]})")
        elif element.tag == "Stream":
            heard.extend(_stream_prompts(element, prompt_words))
    return heard


def _stream_prompts(stream: ET.Element, prompt_words: PromptWords | None) -> list[str]:
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter")}
    language = parameters.get("language", "")
    try:
        if parameters.get("prompts"):
            wanted = [(str(key), dict(values or {})) for key, values in json.loads(parameters["prompts"])]
        elif parameters.get("prompt"):
            wanted = [(parameters["prompt"], dict(json.loads(parameters.get("values") or "{}")))]
        else:
            return []
    except (ValueError, TypeError):
        return ["♪ (a prompt the simulator cannot read)"]
    heard = []
    for key, values in wanted:
        words = prompt_words(key, language, values) if prompt_words else None
        heard.append(words or f"♪ (prompt {key})")
    return heard
