"""GeoReport v2's two wire formats: XML (required by the spec) and JSON, from the same documents.

A document is a plain dict of field → value (str, int, float, bool, None, or a list of dicts for
nested lists such as a service definition's attributes). JSON is that dict as it is; XML follows
the spec's mapping (the Spark convention): a list of documents becomes `<plural><singular>…`,
None an empty element, booleans `true`/`false`. XML is built with ElementTree, so every text is
escaped and the output is well-formed whatever a citizen typed.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any, Iterable, Mapping

from flask import Response

FORMATS = ("xml", "json")
_MIMETYPES = {"xml": "text/xml", "json": "application/json"}
#: The element that wraps each item of a nested list, by the list's own element name.
_ITEM = {"services": "service", "service_requests": "request", "attributes": "attribute", "values": "value",
         "errors": "error", "endpoints": "endpoint", "formats": "format"}
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(parent: ET.Element, document: Mapping[str, Any]) -> None:
    for name, value in document.items():
        child = ET.SubElement(parent, name)
        if isinstance(value, (list, tuple)):
            _items(child, name, value)
        elif isinstance(value, Mapping):
            _fill(child, value)
        else:
            child.text = _text(value)


def _items(parent: ET.Element, name: str, values: Iterable[Any]) -> None:
    item_name = _ITEM.get(name, "item")
    for value in values:
        item = ET.SubElement(parent, item_name)
        if isinstance(value, Mapping):
            _fill(item, value)
        else:
            item.text = _text(value)


def to_xml(root: str, documents: list[Mapping[str, Any]] | Mapping[str, Any]) -> bytes:
    """`<root>` holding one element per document (a list), or the document's fields (a mapping)."""
    element = ET.Element(root)
    if isinstance(documents, Mapping):
        _fill(element, documents)
    else:
        _items(element, root, documents)
    return _DECLARATION + ET.tostring(element, encoding="utf-8", xml_declaration=False)


def respond(fmt: str, root: str, documents: list[Mapping[str, Any]] | Mapping[str, Any],
            status: int = 200) -> Response:
    """The documents in `fmt`, UTF-8, with the spec's content types."""
    if fmt == "json":
        body = json.dumps(documents, ensure_ascii=False).encode("utf-8")
    else:
        body = to_xml(root, documents)
    return Response(body, status=status, content_type=f"{_MIMETYPES[fmt]}; charset=utf-8")


def error(fmt: str, status: int, description: str) -> Response:
    """The spec's error document: [{"code": 403, "description": …}] / <errors><error>…</error></errors>."""
    return respond(fmt if fmt in FORMATS else "xml", "errors", [{"code": status, "description": description}],
                   status=status)
