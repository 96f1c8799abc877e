"""Rendered invoices on disk, named by what they contain.

The key is the SHA-256 of the renderer's options and version plus the invoice's
HTML and the e-invoice XML embedded in it (:mod:`.einvoice`, with the embedding
library's version), so anything that changes the invoice (a refund, a merchant
setting, an edited template) changes the key, and an unchanged invoice is a file
read. Files are
``<key>.pdf`` in ``SELF_BILLING_INVOICE_CACHE_DIR`` (default: ``self_billing_invoices``
in the instance folder).

A render writes a temp file in the same folder (wkhtmltopdf's PDF, then the XML
embedded in it) and moves it into place with
``os.replace``, so a reader sees either nothing or the whole file. Renders of one key
happen once at a time: threads of this process wait on a per-key
:class:`threading.Lock`, other processes on an ``fcntl.flock`` of ``<key>.lock``
(removed when the render is done; see :func:`_file_lock`). Whoever gets the lock
second finds the file made and renders nothing.

The key leaves out the wkhtmltopdf binary's own version, so cached invoices are
served even while the binary is missing; after upgrading wkhtmltopdf, empty the
folder (any time is safe) or bump ``render.RENDERER_VERSION``.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from flask import current_app

from . import einvoice, render
from .cache_prune import prune_soon
from .render_slots import render_slot

log = logging.getLogger(__name__)

DIR_NAME = "self_billing_invoices"


def cache_folder() -> Path:
    """Where the cache is (it may not exist yet)."""
    configured = current_app.config.get("SELF_BILLING_INVOICE_CACHE_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / DIR_NAME


def cache_dir() -> Path:
    """The cache folder, created (private to this user) when missing."""
    path = cache_folder()
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def cache_key(html: str, xml: bytes | None = None) -> str:
    digest = hashlib.sha256(render.cache_options().encode("utf-8"))
    digest.update(b"\0")
    digest.update(html.encode("utf-8"))
    if xml is not None:  # the same HTML with other XML is another file
        digest.update(b"\0" + einvoice.EMBEDDER.encode("utf-8") + b"\0")
        digest.update(xml)
    return digest.hexdigest()


#: A file served this long after it was last marked used is marked again (its mtime is what the
#: cache's least-recently-used pruning goes by, :mod:`.cache_prune`).
MARK_USED_AFTER = 3600


def cached_path(key: str, folder: Path | None = None) -> Path | None:
    """The finished file of ``key``, or None. A file found is marked used (at most once an hour)."""
    path = (folder or cache_folder()) / f"{key}.pdf"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    if stat.st_size <= 0:
        return None
    if time.time() - stat.st_mtime > MARK_USED_AFTER:
        with contextlib.suppress(OSError):
            os.utime(path)
    return path


# -- locks ---------------------------------------------------------------------------------

_registry_lock = threading.Lock()
#: key -> [lock, number of threads holding or waiting for it]; entries go when unused.
_thread_locks: dict[str, list] = {}


@contextlib.contextmanager
def _thread_lock(key: str) -> Iterator[None]:
    with _registry_lock:
        entry = _thread_locks.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        with entry[0]:
            yield
    finally:
        with _registry_lock:
            entry[1] -= 1
            if entry[1] == 0:
                del _thread_locks[key]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` between processes; the file is removed on release.

    Removing a lock file is safe only if a waiter that opened the old file notices:
    after locking, the holder checks that ``path`` still names the file it locked,
    and starts over if not.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def key_lock(key: str, folder: Path) -> Iterator[None]:
    """Held by one render of ``key`` at a time, across threads and processes."""
    with _thread_lock(key), _file_lock(folder / f"{key}.lock"):
        yield


# -- get or make -----------------------------------------------------------------------------


def _write_atomically(folder: Path, final: Path, make: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".pdf")
    os.close(fd)
    try:
        make(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _make(html: str, xml: bytes | None, path: str) -> None:
    """Render ``html`` to ``path``, then embed ``xml`` in it (a PDF without its XML is never kept)."""
    render.render_pdf(html, path)
    if xml is None:
        return
    embedded = path + ".e-invoice"
    try:
        einvoice.embed_file(path, xml, embedded)
        os.replace(embedded, path)
    except Exception:
        log.exception("Invoice PDF: the e-invoice XML could not be embedded (%s).", einvoice.EMBEDDER)
        raise render.RenderError(render.FAILED_MESSAGE, code="pdf_failed", retry_after=30) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(embedded)


def pdf_for_html(html: str, xml: bytes | None = None) -> Path:
    """The PDF of ``html`` with ``xml`` embedded (when given): the cached file, or made once and cached.
    Raises ``RenderError``."""
    folder = cache_dir()
    key = cache_key(html, xml)
    found = cached_path(key, folder)
    if found is not None:
        return found
    with key_lock(key, folder):
        found = cached_path(key, folder)  # made while we waited
        if found is not None:
            return found
        final = folder / f"{key}.pdf"
        with render_slot(folder):  # at most SELF_BILLING_PDF_CONCURRENCY renders at once
            _write_atomically(folder, final, lambda tmp: _make(html, xml, tmp))
    prune_soon(folder)
    return final
