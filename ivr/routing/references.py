"""The `menu:`, `intents:` and `emergency:` sections, and the checks across sections.

Cross-section checks: every department id mentioned exists, each department sits in the
menu once (its keypad path is unambiguous) and can be reached, intent digits agree with
the menu, and department fallbacks never send a caller round in a loop.
"""
from __future__ import annotations

import re

from yaml.nodes import Node, ScalarNode

from ivr.routing.fields import Context, check_id, parse_line
from ivr.routing.rules import Emergency, Intent, MenuOption
from ivr.routing.yamlread import is_null, suggest

_MENU_DIGITS = "12345678"   # 0 = operator and 9 = repeat at every level
_OPTION_KEYS = ("label", "department", "options")
_INTENT_KEYS = ("department", "description", "keywords", "examples", "digit", "service_code", "service_name")
#: A service code as Open311 clients send it back in URLs and forms: short, no spaces or slashes.
_SERVICE_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
NO_SERVICE = "none"   # `service_code: none`: informational intent, nothing to report
_EMERGENCY_KEYS = ("phrases", "examples", "advisory", "transfer", "together")
#: How the parts of an emergency `together` entry are joined ("stuck + water is coming in").
TOGETHER_JOIN = "+"


def department_ref(ctx: Context, node: Node, what: str) -> str | None:
    """A department id that exists in `departments:`."""
    value = ctx.reader.text(node, what)
    if value is None:
        return None
    if value not in ctx.department_nodes:
        hint = suggest(value, ctx.department_nodes) or (
            f" — known departments: {', '.join(ctx.department_nodes)}" if ctx.department_nodes else "")
        ctx.reader.report(node, f"{what} refers to unknown department '{value}'{hint}")
        return None
    return value


def _digit(ctx: Context, node: Node, where: str) -> str | None:
    digit = node.value if isinstance(node, ScalarNode) else ""
    if digit in ("0", "9"):
        use = "the operator" if digit == "0" else "repeating the menu"
        ctx.reader.report(node, f"digit {digit} in {where} is reserved for {use} — use one of 1-8")
        return None
    if len(digit) != 1 or digit not in _MENU_DIGITS:
        ctx.reader.report(node, f"'{digit}' in {where} is not a keypad digit — use one digit from 1 to 8 "
                                "(quote it: \"1\":)")
        return None
    return digit


def _leaf(ctx: Context, node: Node, label_node: Node | None, path: str) -> MenuOption | None:
    """A menu entry that reaches one department; its label defaults to the department's name."""
    department = department_ref(ctx, node, f"menu option {path}")
    if department is None:
        return None
    if department in ctx.menu_paths:
        ctx.reader.report(node, f"department '{department}' is in the menu twice ({ctx.menu_paths[department]} "
                                f"and {path}) — keep one so its keypad path is unambiguous")
        return None
    ctx.menu_paths[department] = path
    known = ctx.departments.get(department)
    if label_node is not None:
        label = ctx.reader.localized(label_node, f"the label of menu option {path}", ctx.languages)
    else:
        label = dict(known.name) if known else None
    return None if label is None else MenuOption(digit=path.split()[-1], label=label, department=department)


def _option(ctx: Context, key_node: Node, node: Node, path: str, *, top: bool) -> MenuOption | None:
    if isinstance(node, ScalarNode) and not is_null(node):
        return _leaf(ctx, node, None, path)
    allowed = _OPTION_KEYS if top else ("label", "department")
    entries = ctx.reader.mapping(node, f"menu option {path}", allowed)
    if entries is None:
        return None
    if ("department" in entries) == ("options" in entries):
        what = "either 'department' or 'options'" if top else "'department'"
        ctx.reader.report(key_node, f"menu option {path} needs {what}" + (", not both" if len(entries) > 1 else ""))
        return None
    label_node = entries["label"][1] if "label" in entries else None
    if "department" in entries:
        return _leaf(ctx, entries["department"][1], label_node, path)
    if label_node is None:
        ctx.reader.report(key_node, f"menu option {path} is a group and needs a 'label' to speak, "
                                "e.g. label: {en: water and trash, es: agua y basura}")
    label = ctx.reader.localized(label_node, f"the label of menu option {path}", ctx.languages) \
        if label_node is not None else None
    options = _options(ctx, entries["options"][1], path, top=False)
    if label is None or options is None:
        return None
    return MenuOption(digit=path, label=label, options=options)


def _options(ctx: Context, node: Node, prefix: str, *, top: bool) -> tuple[MenuOption, ...] | None:
    where = "the menu" if top else f"menu option {prefix}"
    items = ctx.reader.items(node, where)
    if items is None:
        return None
    if not items:
        ctx.reader.report(node, f"{where} has no options — add digits like \"1\": roads")
        return None
    options = []
    for key, (key_node, value_node) in items.items():
        digit = _digit(ctx, key_node, where)
        option = _option(ctx, key_node, value_node, f"{prefix} {digit}".strip(), top=top) if digit else None
        if option is not None:
            options.append(option)
    return tuple(sorted(options, key=lambda o: o.digit)) if len(options) == len(items) else None


def parse_menu(ctx: Context, node: Node) -> tuple[MenuOption, ...] | None:
    """The two-level keypad menu; fills `ctx.menu_paths`."""
    return _options(ctx, node, "", top=True)


def _intent(ctx: Context, intent_id: str, key_node: Node, node: Node) -> Intent | None:
    reader, what = ctx.reader, f"intent '{intent_id}'"
    required = ("department", "description", "keywords", "examples")
    entries = reader.mapping(node, what, _INTENT_KEYS, required=required, owner=key_node)
    if entries is None or any(key not in entries for key in required):
        return None  # reported by `mapping`
    department = department_ref(ctx, entries["department"][1], f"the department of {what}")
    description = reader.localized(entries["description"][1], f"the description of {what}", ctx.languages)
    keywords = reader.phrases(entries["keywords"][1], f"keywords of {what}", ctx.languages)
    examples = reader.phrases(entries["examples"][1], f"examples of {what}", ctx.languages)
    digit = reader.text(entries["digit"][1], f"the digit of {what}") if "digit" in entries else None
    path = "0" if department is not None and department == ctx.operator else ctx.menu_paths.get(department or "")
    if digit is not None and path:
        if re.sub(r"\D", "", digit) != path.replace(" ", ""):
            reader.report(entries["digit"][1], f"the digit of {what} is '{digit}' but department "
                                               f"'{department}' is at '{path}' in the menu — write "
                                               f"digit: \"{path}\" or remove it (it follows the menu)")
    service = _service(ctx, intent_id, key_node, entries)
    if department is None or description is None or keywords is None or examples is None or service is None:
        return None
    code, name = service
    return Intent(id=intent_id, department=department, description=description,
                  keywords=keywords, examples=examples, service_code=code, service_name=name)


def _service(ctx: Context, intent_id: str, key_node: Node,
             entries: dict[str, tuple[Node, Node]]) -> tuple[str | None, dict[str, str] | None] | None:
    """(service_code, service_name) of an intent; None when either is unusable (reported)."""
    reader, what = ctx.reader, f"intent '{intent_id}'"
    name = None
    if "service_name" in entries:
        name = reader.localized(entries["service_name"][1], f"the service_name of {what}", ctx.languages)
        if name is None:
            return None
    if "service_code" not in entries:
        if name is not None:
            reader.report(entries["service_name"][1], f"{what} has a service_name but no service_code — add "
                                                      f"service_code: {intent_id.replace('_', '-')}")
            return None
        reader.warn(key_node, f"{what} has no service_code — give it one if citizens report it as a problem "
                              f"(e.g. service_code: {intent_id.replace('_', '-')}), or write "
                              "service_code: none for an informational intent")
        return None, None
    node = entries["service_code"][1]
    code = reader.text(node, f"the service_code of {what}")
    if code is None:
        return None
    if code.lower() == NO_SERVICE:
        if name is not None:
            reader.report(entries["service_name"][1], f"{what} has service_code: none, so its service_name is "
                                                      "never used — remove it or give the intent a code")
            return None
        return None, None
    if not _SERVICE_CODE.match(code):
        fixed = re.sub(r"[^a-z0-9_.-]+", "-", code.lower()).strip("-._")
        reader.report(node, f"the service_code of {what} '{code}' must be 1-64 lowercase letters, digits, '-', "
                            f"'_' or '.' (it goes in Open311 URLs), e.g. '{fixed or intent_id}'")
        return None
    if code in ctx.service_codes:
        other, first = ctx.service_codes[code]
        reader.report(node, f"service_code '{code}' of {what} is already the code of intent '{other}' (line "
                            f"{first.start_mark.line + 1}) — each service needs its own code")
        return None
    ctx.service_codes[code] = (intent_id, node)
    return code, name


def parse_intents(ctx: Context, node: Node) -> tuple[Intent, ...] | None:
    """Every intent, in file order."""
    items = ctx.reader.items(node, "intents")
    if items is None:
        return None
    if not items:
        ctx.reader.report(node, "intents is empty — add at least one intent per department")
        return None
    intents = []
    for intent_id, (key_node, value_node) in items.items():
        if check_id(ctx.reader, key_node, "intent id") is None:
            continue
        intent = _intent(ctx, intent_id, key_node, value_node)
        if intent is not None:
            intents.append(intent)
    return tuple(intents) if len(intents) == len(items) else None


def parse_emergency(ctx: Context, node: Node) -> Emergency | None:
    """Emergency phrases/examples, the advisory and the optional transfer line."""
    reader = ctx.reader
    entries = reader.mapping(node, "emergency", _EMERGENCY_KEYS, required=("phrases", "advisory"))
    if entries is None or "phrases" not in entries or "advisory" not in entries:
        return None
    phrases = reader.phrases(entries["phrases"][1], "emergency phrases", ctx.languages)
    examples = (reader.phrases(entries["examples"][1], "emergency examples", ctx.languages)
                if "examples" in entries else {lang: () for lang in ctx.languages})
    advisory = reader.localized(entries["advisory"][1], "the emergency advisory", ctx.languages)
    together: dict[str, tuple[str, ...]] | None = {}
    if "together" in entries:
        together = reader.phrases(entries["together"][1], "emergency together entries", ctx.languages)
        if together is not None and not _together_parts_ok(ctx, entries["together"][1]):
            together = None
    transfer = None
    if "transfer" in entries and not is_null(entries["transfer"][1]):
        transfer = parse_line(reader, entries["transfer"][1], "the emergency transfer line")
        if transfer is None:
            return None
    if phrases is None or examples is None or advisory is None or together is None:
        return None
    return Emergency(phrases=phrases, examples=examples, advisory=advisory, transfer=transfer, together=together)


def _together_parts_ok(ctx: Context, node: Node) -> bool:
    """Each `together` entry joins two or more non-empty parts with ' + '; reported at its line."""
    ok = True
    for _, per_language in getattr(node, "value", ()):
        for item in getattr(per_language, "value", ()):
            if not isinstance(item, ScalarNode):
                continue
            parts = [part.strip() for part in str(item.value).split(TOGETHER_JOIN)]
            if len(parts) < 2 or not all(parts):
                ctx.reader.report(item, f"emergency together entry '{item.value}' needs two or more parts joined "
                                        f"by ' {TOGETHER_JOIN} ' — e.g. 'stuck {TOGETHER_JOIN} water is coming in'")
                ok = False
    return ok


def check_fallbacks(ctx: Context) -> None:
    """Fallback departments exist and never chain back to where they started."""
    reader = ctx.reader
    for kind in ("when_closed", "when_busy"):
        targets: dict[str, str] = {}
        for dept_id, department in ctx.departments.items():
            fallback = getattr(department, kind)
            if fallback.action != "department":
                continue
            node = ctx.fallback_nodes[(dept_id, kind)]
            target = fallback.target or ""
            if target not in ctx.department_nodes:
                hint = suggest(target, ctx.department_nodes) or " — name a department listed under departments"
                reader.report(node, f"{kind} of department '{dept_id}' refers to unknown department "
                                    f"'{target}'{hint}")
            else:
                targets[dept_id] = target
        reported: set[str] = set()
        for start in targets:
            chain = [start]
            while chain[-1] in targets and targets[chain[-1]] not in chain:
                chain.append(targets[chain[-1]])
            if chain[-1] in targets and targets[chain[-1]] in chain:
                loop = chain[chain.index(targets[chain[-1]]):]
                if reported.isdisjoint(loop):
                    reported.update(loop)
                    route = " → ".join(loop + [loop[0]])
                    reader.report(ctx.fallback_nodes[(loop[0], kind)],
                                  f"{kind} fallbacks go round in a loop ({route}) — end the chain with "
                                  "voicemail, callback" + (", queue" if kind == "when_busy" else ", message")
                                  + " or a transfer")


def check_reachable(ctx: Context, operator: str) -> None:
    """Every department except the operator (digit 0) has a place in the menu."""
    for dept_id, key_node in ctx.department_nodes.items():
        if dept_id != operator and dept_id not in ctx.menu_paths and dept_id in ctx.departments:
            ctx.reader.report(key_node, f"department '{dept_id}' cannot be reached from the keypad menu — "
                                        "add it under a menu digit, e.g. \"3\": {options: {\"1\": "
                                        f"{dept_id}}}}}")

