"""Keep the invoice cache within ``SELF_BILLING_INVOICE_CACHE_MAX_MB``: least recently used files go first.

A cached PDF is only a copy (the document itself is the frozen row, :mod:`.issuing`), so removing
one costs a render on its next download, nothing more. :func:`prune_cache` removes the files used
longest ago (a download marks its file used, see :func:`.cache.cached_path`) until the folder is
back under 90 % of the limit, and temp files a crashed render left behind for over an hour. It
runs after a render has written a file, at most once a minute per process
(:func:`prune_soon`), and on every ``flask self-billing tick``. A file being read while it is
removed is still read whole (POSIX keeps it until it is closed).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from flask import current_app

log = logging.getLogger(__name__)

#: Seconds between two prunes of one process after renders.
PRUNE_EVERY = 60.0
#: Temp files older than this are what a crashed render left.
STALE_TEMP_SECONDS = 3600
#: A prune goes down to this share of the limit, so it does not run again at the next render.
LOW_WATER = 0.9

_last_prune = [float("-inf")]
_prune_lock = threading.Lock()


def limit_bytes() -> int | None:
    """The configured limit in bytes; None when unbounded (0 or None)."""
    megabytes = current_app.config.get("SELF_BILLING_INVOICE_CACHE_MAX_MB")
    return int(float(megabytes) * 1024 * 1024) if megabytes else None


def prune_cache(folder: Path, max_bytes: int | None) -> tuple[int, int]:
    """Remove least recently used PDFs until ``folder`` holds at most ``LOW_WATER * max_bytes``, and
    stale temp files. Returns (files removed, bytes freed)."""
    files: list[tuple[float, int, str]] = []
    removed = freed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0, 0
    for entry in entries:
        try:
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if entry.name.startswith(".tmp-"):
            if now - stat.st_mtime > STALE_TEMP_SECONDS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed, freed = removed + 1, freed + stat.st_size
            continue
        if entry.name.endswith(".pdf") and entry.is_file(follow_symlinks=False):
            files.append((stat.st_mtime, stat.st_size, entry.path))
    total = sum(size for _mtime, size, _path in files)
    if max_bytes is None or total <= max_bytes:
        return removed, freed
    target = int(max_bytes * LOW_WATER)
    for _mtime, size, path in sorted(files):
        if total <= target:
            break
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed, freed = removed + 1, freed + size
        total -= size
    log.info("Invoice cache: removed %d file(s), %d bytes, to stay under %d bytes.", removed, freed, max_bytes)
    return removed, freed


def prune_soon(folder: Path) -> None:
    """Prune ``folder`` unless this process did so within :data:`PRUNE_EVERY` seconds."""
    max_bytes = limit_bytes()
    if max_bytes is None:
        return
    with _prune_lock:
        now = time.monotonic()
        if now - _last_prune[0] < PRUNE_EVERY:
            return
        _last_prune[0] = now
    prune_cache(folder, max_bytes)
