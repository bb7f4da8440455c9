"""Call data ⇄ JSON: what the store keeps in its JSON columns and how it is read back."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any, Mapping

from ivr.routing.state import CallState, Turn


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON: {value!r}")


def dumps(value: Any) -> str:
    """`value` as JSON text, dataclasses, datetimes and sets converted (TypeError for anything
    else): the store's engines serialise their JSON columns with it (`db.make_engine`), so a
    writer hands over its values as they are and they are encoded once, when bound."""
    return json.dumps(value, default=_json_default)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (dataclasses, datetimes and sets converted), or TypeError."""
    if value is None:
        return None
    return json.loads(dumps(value))


#: CallState's fields: all of them JSON scalars or tuples of scalars (tests/test_webhook_writes.py
#: checks that `state_to_dict` agrees with `jsonable(dataclasses.asdict(state))`).
_STATE_FIELDS = tuple(field.name for field in dataclasses.fields(CallState))


def state_to_dict(state: CallState) -> dict[str, Any]:
    """`state` as stored: what `jsonable(dataclasses.asdict(state))` gives, without the deep copy
    and the JSON round trip (every webhook stores one, inside its write transaction)."""
    values = {name: getattr(state, name) for name in _STATE_FIELDS}
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


#: The tuple-typed fields (their defaults are tuples): JSON gives lists back.
_TUPLE_FIELDS = tuple(field.name for field in dataclasses.fields(CallState) if isinstance(field.default, tuple))


def state_from_dict(data: Mapping[str, Any] | None) -> CallState:
    """A CallState from stored JSON, ignoring keys this version does not know and defaulting
    missing ones — so a deploy mid-call (fields added or removed) loses nothing else.

    Every webhook reads one, so the field names are worked out once (`_STATE_FIELDS`)."""
    if not data:
        return CallState()
    values = {name: data[name] for name in _STATE_FIELDS if name in data}
    for name in _TUPLE_FIELDS:
        value = values.get(name)
        if isinstance(value, list):   # JSON has no tuples
            values[name] = tuple(value)
    return CallState(**values)


def turn_from_dict(data: Mapping[str, Any]) -> Turn:
    """A Turn from stored JSON, tolerating unknown and missing keys like `state_from_dict`."""
    names = {f.name for f in dataclasses.fields(Turn)}
    return Turn(**{k: v for k, v in data.items() if k in names})
