"""What every JSON endpoint of the API shares: ids in the URL, NUL characters, and (re-exported) body
parsing against a schema and the error form.

Views call :func:`parse_body` with a pydantic model; malformed JSON, a wrong content type, an
oversized body and invalid fields all become the contract's ``{"error": {...}}`` with 400/413/415,
before any view code runs (:mod:`plugin.http_json`; the rules themselves are in
:mod:`plugin.validation`). :func:`install_json_errors` makes a blueprint answer every error in that form.
"""
from __future__ import annotations

from flask import current_app, request

from ..errors import BillingError, InvalidInput, NotFound
from ..http_json import (
    MAX_JSON_DEPTH,
    decode_json,
    install_json_errors,
    parse_body,
    read_json,
)
from ..validation import MAX_ROW_ID, NUL_MESSAGE, is_row_id, validation_fields

__all__ = [
    "MAX_JSON_DEPTH", "MAX_ROW_ID", "NUL_MESSAGE", "decode_json", "install_json_errors", "parse_body",
    "path_id", "read_json", "refuse_nul_characters", "validation_fields",
]


def refuse_nul_characters() -> None:
    """Before every plugin view: a NUL in the path is 404 (nothing is there), in the query or a form 400.

    PostgreSQL text cannot hold U+0000, so a NUL that reached a query would be a database error, a
    500. JSON bodies are checked as they are read (:func:`read_json`), models as they are validated.
    """
    view = current_app.view_functions.get(request.endpoint or "")
    module = getattr(view, "__module__", "") or ""
    if not module.startswith("plugin.") or module.startswith("plugin.demo."):
        return  # the host's own views (the demo host's too)
    if any("\x00" in str(value) for value in (request.view_args or {}).values()):
        raise NotFound("There is nothing at this address: it contains a NUL character.")
    bad = sorted({name for source in (request.args, request.form)
                  for name, value in source.items(multi=True) if "\x00" in name or "\x00" in value})
    if bad:
        raise InvalidInput(NUL_MESSAGE, fields={name: "contains a NUL character" for name in bad})


def path_id(raw: str, not_found: BillingError) -> int:
    """The row id a URL segment names, or ``not_found`` raised.

    Routes take ids as plain strings (not ``<int:...>``) so that a segment that is
    no id (``-1``, ``1.5``, ``abc``, ``²``, an id past the column's range) answers
    the same JSON 404 as an id that does not exist, instead of an HTML page or a
    database error.
    """
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not is_row_id(int(raw)):
        raise not_found
    return int(raw)
