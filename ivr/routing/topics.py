"""The `topics:` section: what citizens subscribe to for alerts, and which department owns each.

```yaml
topics:
  water:
    name: {en: water service, es: servicio de agua}
    keywords: {en: [water, sewer], es: [agua, drenaje]}     # words a text may use: SUBSCRIBE WATER
    intents: [water_main_break, no_water, water_quality]     # callers about these hear its alert
    department: water
```

The section is optional (no topics: no alerts). Checks: ids are lowercase, every intent and the
department exist, an intent belongs to one topic at most (so a caller hears one alert), and an SMS
word names one topic per language and is not an SMS command word (STOP, HELP …).
"""
from __future__ import annotations

from yaml.nodes import Node

from ivr.routing.fields import Context, check_id
from ivr.routing.references import department_ref
from ivr.routing.rules import Intent, Topic
from ivr.routing.sms_keywords import COMMAND_WORDS
from ivr.routing.text import fold
from ivr.routing.yamlread import suggest

_TOPIC_KEYS = ("name", "keywords", "intents", "department")

def topic_word(text: str) -> str:
    """How a topic word is compared: case and accents folded, surrounding punctuation dropped."""
    return fold(text).strip(" .,!?¡¿'\"")


def _intents(ctx: Context, node: Node, what: str, known: dict[str, Intent]) -> tuple[str, ...] | None:
    names = ctx.reader.texts(node, what)
    if names is None:
        return None
    good = []
    for item, name in zip(ctx.reader.sequence(node, what) or [], names):
        if name not in known:
            hint = suggest(name, known) or " — use an id listed under intents"
            ctx.reader.report(item, f"{what} names unknown intent '{name}'{hint}")
        else:
            good.append(name)
    return tuple(good) if len(good) == len(names) else None


def _topic(ctx: Context, topic_id: str, key_node: Node, node: Node, known: dict[str, Intent]) -> Topic | None:
    reader, what = ctx.reader, f"topic '{topic_id}'"
    entries = reader.mapping(node, what, _TOPIC_KEYS, required=_TOPIC_KEYS, owner=key_node)
    if entries is None or any(key not in entries for key in _TOPIC_KEYS):
        return None  # reported by `mapping`
    name = reader.localized(entries["name"][1], f"the name of {what}", ctx.languages)
    keywords = reader.phrases(entries["keywords"][1], f"keywords of {what}", ctx.languages)
    intents = _intents(ctx, entries["intents"][1], f"the intents of {what}", known)
    department = department_ref(ctx, entries["department"][1], f"the department of {what}")
    if name is None or keywords is None or intents is None or department is None:
        return None
    return Topic(id=topic_id, name=name, keywords=keywords, intents=intents, department=department)


def parse_topics(ctx: Context, node: Node, intents: tuple[Intent, ...] | None) -> tuple[Topic, ...] | None:
    """Every topic in file order, checked against the intents and departments."""
    items = ctx.reader.items(node, "topics")
    if items is None:
        return None
    known = {i.id: i for i in intents or ()}
    topics: list[Topic] = []
    owner: dict[str, str] = {}                     # intent → topic
    words: dict[tuple[str, str], str] = {}          # (language, word) → topic
    for topic_id, (key_node, value_node) in items.items():
        if check_id(ctx.reader, key_node, "topic id") is None:
            continue
        topic = _topic(ctx, topic_id, key_node, value_node, known) if intents is not None else None
        if topic is None:
            continue
        clash = False
        for intent in topic.intents:
            if intent in owner:
                ctx.reader.report(key_node, f"intent '{intent}' is in topic '{owner[intent]}' and topic "
                                            f"'{topic_id}' — keep it in one, so a caller hears one alert")
                clash = True
            owner.setdefault(intent, topic_id)
        for language, phrases in topic.keywords.items():
            for phrase in (topic_id,) + tuple(phrases):
                word = topic_word(phrase)
                if word in COMMAND_WORDS:
                    ctx.reader.report(key_node, f"keyword '{phrase}' of topic '{topic_id}' is an SMS command "
                                                "word — choose another word")
                    clash = True
                elif words.setdefault((language, word), topic_id) != topic_id:
                    ctx.reader.report(key_node, f"keyword '{phrase}' ({language}) names topic "
                                                f"'{words[(language, word)]}' and topic '{topic_id}' — keep it in one")
                    clash = True
        if not clash:
            topics.append(topic)
    if intents is None:
        return None   # the intents' own problems are reported; topics cannot be checked against them
    return tuple(topics) if len(topics) == len(items) else None
