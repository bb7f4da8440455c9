"""Text normalisation for the classifier: how callers talk and how recognisers mishear.

Pure functions, no I/O. Two token forms are produced:
- *surface* tokens: lower-case, accents folded, contractions expanded, fillers dropped —
  tense survives ("breaking" ≠ "broke"), which the emergency cues need;
- *stems*: surface tokens with stop words removed, irregular forms mapped to a lemma,
  synonyms mapped to one word and light suffix stripping, used for intent scoring.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+")

# Expanded before tokenising so "isn't" keeps its negation and "there's" loses its "s".
_CONTRACTIONS = {
    "won't": "will not", "can't": "can not", "cannot": "can not", "ain't": "is not",
    "n't": " not", "'re": " are", "'s": " is", "'m": " am", "'ve": " have", "'ll": " will", "'d": " would",
}
_CONTRACTION = re.compile(r"won't|can't|cannot|ain't|n't|'re|'s|'m|'ve|'ll|'d")

# Disfluencies and discourse fillers; removed from surface tokens in every language.
FILLERS = {
    "en": {"um", "umm", "uh", "uhh", "uhm", "er", "erm", "hmm", "mm", "ah", "oh", "hi", "hello", "hey",
           "yeah", "yea", "ok", "okay", "well", "like", "so", "basically", "actually", "literally",
           "anyway", "please", "thanks", "thank", "sir", "maam"},
    "es": {"eh", "em", "este", "pues", "bueno", "hola", "oiga", "mire", "senor", "senora", "senorita",
           "gracias", "favor", "ok", "okay", "digo", "osea"},
}

# Words that carry no routing signal. Negations are deliberately absent: "not breathing".
STOP_WORDS = {
    "en": set("""a an the and or but if then of to in on at by for from with about into onto
    is are was were be been being am do does did doing have has had having i me my mine
    we us our you your he him his she her they them their it its this that these those there here what
    which who whom whose when where why how can could would should will shall may might must just also
    very really too some any all there's get got getting want wanted need needed would like call calling
    im ive id know think one two three thing something someone somebody anyone lots kind sort
    right now today tonight yesterday last week again still going gonna wanna as than said say says
    tell told see saw seen look looks looking hear heard come came go goes went make made
    give let put keep keeps kept seem seems try trying tried happen happened happening guess mean
    take""".split()),
    "es": set("""a al ante con de del desde en entre hacia hasta para por sin sobre tras el la los las lo
    un una unos unas y o u e ni que se me te le les nos mi mis tu tus su sus es son esta estan estoy
    esta este esto eso esa ese hay hace ha he han tengo tiene tienen quiero quisiera necesito puedo
    puede como cuando donde porque muy mas ya tambien yo usted ustedes el ella ellos algo alguien
    llamo llamar llamando para ahora hoy ayer""".split()),
}

NEGATIONS = {"en": {"not", "no", "never", "nobody", "nothing"}, "es": {"no", "nunca", "nadie", "nada"}}

# Irregular and spoken forms → one lemma, so "stole"/"stolen"/"steal" share evidence.
_LEMMAS = {
    "en": {"broke": "break", "broken": "break", "stole": "steal", "stolen": "steal", "fell": "fall",
           "fallen": "fall", "bit": "bite", "bitten": "bite", "ran": "run", "hit": "hit", "dug": "dig",
           "knocked": "knock", "left": "leave", "lit": "light", "lights": "light", "mice": "mouse",
           "children": "child", "kids": "child", "kid": "child", "people": "person", "men": "man",
           "women": "woman", "teeth": "tooth", "leaves": "leaf", "cops": "police", "cop": "police",
           "garbage": "trash", "rubbish": "trash", "streetlight": "streetlight", "lamppost": "streetlight",
           "automobile": "car", "vehicle": "car", "vehicles": "car", "cars": "car", "neighbour": "neighbor",
           "neighbours": "neighbor", "colour": "color", "mould": "mold", "licence": "license",
           "licences": "license", "pavement": "asphalt", "aint": "not", "parked": "parking",
           # Spellings recognisers and typists produce for the same word.
           "lite": "light", "nite": "night", "thru": "through"},
    "es": {"carro": "coche", "auto": "coche", "automovil": "coche", "vehiculo": "coche"},
}


# Words whose stem would collide with another department's ("parking" ≠ "park").
_UNSTEMMED = {"parking"}


def fold(text: str) -> str:
    """Lower-case and strip accents ("Sí, señor" → "si, senor"), so ASR output and YAML agree."""
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("’", "'").replace("`", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def surface_tokens(text: str, language: str) -> list[str]:
    """Folded words with contractions expanded and fillers removed; tense and order kept."""
    folded = _CONTRACTION.sub(lambda m: _CONTRACTIONS[m.group(0)], fold(text))
    fillers = FILLERS.get(language, set())
    words = [w for w in _WORD.findall(folded) if w not in fillers]
    # Street names are not requests: "Park Avenue", "Main Street", "Water Street".
    suffixes = _STREET_SUFFIXES.get(language, set())
    return [w for i, w in enumerate(words)
            if not (i + 1 < len(words) and words[i + 1] in suffixes and w not in _NOT_A_NAME)
            and not (w == "lot" and i + 1 < len(words) and words[i + 1] == "of")]


_STREET_SUFFIXES = {
    "en": {"street", "st", "avenue", "ave", "boulevard", "blvd", "lane", "drive", "terrace",
           "highway", "parkway", "road"},
    "es": set(),
}
# Words before a street suffix that describe the street rather than name it.
_NOT_A_NAME = {"the", "a", "my", "our", "this", "that", "your", "their", "his", "her", "on", "in", "at",
               "of", "to", "from", "whole", "entire", "same", "dead", "side", "one", "busy", "icy",
               "snowy", "dark", "city", "private", "residential", "next", "across", "down", "up", "and",
               "dirt", "gravel", "bumpy", "flooded", "every", "each", "is", "no", "not", "bike", "bus",
               "turn", "left", "right", "fire", "cross", "that", "this"}


@lru_cache(maxsize=65536)
def stem(word: str, language: str) -> str:
    """Light, language-aware suffix stripping; the same on both the rules' and the caller's side."""
    word = _LEMMAS.get(language, {}).get(word, word)
    if word in _UNSTEMMED:
        return word
    if language == "es":
        return _stem_es(word)
    return _stem_en(word)


def _undouble(word: str) -> str:
    # "stopped" → "stopp" → "stop"; keeps "ll"/"ss" words ("fall", "grass") intact.
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


def _stem_en(word: str) -> str:
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("es") and word[-3] in "xhoz" and len(word) > 4:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = _undouble(word[:-3])
    elif word.endswith("ed") and len(word) > 4:
        word = _undouble(word[:-2])
    elif word.endswith("ly") and len(word) > 5:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"
    return word


def _stem_es(word: str) -> str:
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix in ("aciones", "acion", "amiento", "mente", "iendo", "ando", "ados", "adas", "idos",
                   "idas", "ado", "ada", "ido", "ida", "es", "os", "as", "s", "o", "a", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def stems(tokens: list[str], language: str) -> list[str]:
    """Content-word stems of surface tokens (stop words dropped, negations kept)."""
    stop = STOP_WORDS.get(language, STOP_WORDS["en"])
    return [stem(t, language) for t in tokens if t not in stop]


def surface_key(word: str) -> str:
    """Plural-insensitive form ("flames" → "flame") that keeps tense ("breaking" ≠ "broke")."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def edits1(word: str) -> set[str]:
    """Every string one deletion away from `word` (symmetric-delete fuzzy lookup, as in SymSpell)."""
    return {word[:i] + word[i + 1:] for i in range(len(word))}
