"""Secret tokens the plugin hands out, and the SHA-256 digests it keeps instead of them.

A portal session's cookie and a login link carry a random token (:func:`new_token`); the database
holds only its :func:`digest`, so a copy of the table opens nothing. An ``Idempotency-Key`` is kept
as :func:`digest_parts` of who sent it and the key. The digests are what rows already store: they
must never change, or every stored session, link and key stops matching.
"""
from __future__ import annotations

import hashlib
import secrets

#: Random bytes in a new token (43 URL-safe characters).
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random token for a cookie or a link: URL-safe, unguessable."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(text: str) -> str:
    """SHA-256 of ``text`` (UTF-8), as 64 hex characters: how a token is stored."""
    return hashlib.sha256(text.encode()).hexdigest()


def digest_parts(*parts: bytes) -> str:
    """SHA-256 of several parts, as 64 hex characters, each part preceded by its length (8 bytes,
    big-endian), so that ``(b"ab", b"c")`` and ``(b"a", b"bc")`` differ."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()
