"""Whatever an admin types, the loader answers with Rules or with FILE:LINE problems — never a traceback."""
from __future__ import annotations

import random

import pytest

from ivr.routing.problems import ConfigError
from ivr.routing.rules import Rules
from ivr.routing.load import parse_rules
from test_rules_errors import CITY

# Values of the wrong shape or meaning, dropped in place of whatever a line held.
WRONG_VALUES = ("", "[]", "{}", "~", "x", "1", "-1", "yes", "no", "{a: b}", "[1, 2]", "'24:00'", '""',
                "[[]]", "{en: }", "!!binary aGk=", "&a [1]", "*a")


def mutate(text: str, rng: random.Random) -> str:
    """Delete, duplicate or overwrite the value of one to three lines."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(len(lines))
        roll = rng.random()
        if roll < 0.3:
            del lines[index]
        elif roll < 0.8 and ":" in lines[index]:
            key = lines[index].split(":", 1)[0]
            lines[index] = f"{key}: {rng.choice(WRONG_VALUES)}"
        else:
            lines.insert(index, lines[rng.randrange(len(lines))])
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(4))
def test_mangled_files_give_problems_not_tracebacks(seed):
    rng = random.Random(seed)
    outcomes = {"valid": 0, "refused": 0}
    for _ in range(75):
        text = mutate(CITY, rng)
        try:
            result = parse_rules(text, "mangled.yaml")
        except ConfigError as exc:
            outcomes["refused"] += 1
            assert exc.problems
            last_line = len(text.splitlines()) + 1
            for problem in exc.problems:
                assert 0 <= problem.line <= last_line and problem.message.strip()
                assert str(problem).startswith(f"mangled.yaml:{problem.line}: ")
        else:
            outcomes["valid"] += 1
            assert isinstance(result, Rules)
    assert outcomes["refused"] > 0   # the mutations do hit real mistakes


def test_binary_garbage_is_a_problem(tmp_path):
    from ivr.routing.load import load_rules

    path = tmp_path / "rules.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert caught.value.problems[0].path == str(path)
