"""The signed part of a render-on-fetch URL: `/prompts/audio/<name>.wav?say=<token>`.

A webhook must never wait for a voice, so a prompt whose audio is not on disk yet is played from
a URL that renders it when Twilio fetches it (ivr.prompts.serving). The token carries what to
render — the cache name, the words and the voice's language — signed with the app's secret key
(itsdangerous, salted for this one use), so nobody else can make the line synthesise their text
or fill its cache. The words are readable in the URL (signed, not encrypted): prompts are what
the line says to any caller anyway.
"""
from __future__ import annotations

from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from itsdangerous import BadSignature, URLSafeSerializer

#: Keeps these tokens apart from anything else signed with the same key (console sessions).
SALT = "ivr.prompts.render-on-fetch"
QUERY = "say"


class Order(NamedTuple):
    """What a render-on-fetch URL asks for."""
    name: str        # the cache name the words had when the URL was made
    words: str
    voice: str       # the catalogue language whose voice speaks them


def signer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def token(signer_: URLSafeSerializer, order: Order) -> str:
    """URL-safe (base64 and dots): appended to the file's path as it is."""
    return str(signer_.dumps(list(order)))


def verified(signer_: URLSafeSerializer, token_: str) -> Order | None:
    """The order a token carries when our key signed it; None for anything forged or malformed."""
    try:
        return _order(signer_.loads(token_))
    except BadSignature:
        return None


def words_in_url(url: str) -> str | None:
    """The words a render-on-fetch URL will say, unverified (the simulator shows what a caller
    hears; it does not hold the line's key). None for any other URL."""
    values = parse_qs(urlsplit(url).query).get(QUERY)
    if not values:
        return None
    _unchecked, payload = URLSafeSerializer("", salt=SALT).loads_unsafe(values[0])   # no key: never valid
    order = _order(payload)
    return order.words if order else None


def _order(payload: object) -> Order | None:
    """Only the exact shape `token` makes (a signed payload is ours, but check rather than trust)."""
    if isinstance(payload, list) and len(payload) == 3 and all(isinstance(part, str) for part in payload):
        return Order(*payload)
    return None
