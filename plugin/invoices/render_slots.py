"""How many wkhtmltopdf renders run at once: ``SELF_BILLING_PDF_CONCURRENCY`` slots per cache folder.

Each render holds one slot: an exclusive ``fcntl.flock`` on one of N files in
``<cache folder>/.render-slots/``. Locks on separately opened files exclude each other across threads
and processes alike, so every worker of a server (and every server sharing the folder) counts
against one limit, and a process that dies lets go of its slot with its file descriptors. A render
that finds every slot taken waits up to ``SELF_BILLING_PDF_QUEUE_SECONDS``, then the download answers
503 with ``Retry-After``: one burst of first downloads cannot start a wkhtmltopdf per request and
starve the machine. A cached invoice needs no slot.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

from flask import current_app

from .render import RenderError

log = logging.getLogger(__name__)

BUSY_MESSAGE = ("Many invoices are being made right now. Please try again in a few seconds; "
                "yours will be ready then.")
#: The Retry-After of a busy answer, in seconds.
BUSY_RETRY_AFTER = 5


def slot_count() -> int:
    """``SELF_BILLING_PDF_CONCURRENCY``, or the machine's cores when it is unset (None or 0)."""
    configured = current_app.config.get("SELF_BILLING_PDF_CONCURRENCY")
    return max(1, int(configured or os.cpu_count() or 1))


def _try_slot(folder: Path, count: int) -> int | None:
    """A file descriptor holding a free slot's lock, or None when all are taken."""
    for index in random.sample(range(count), count):  # spread waiters over the slots
        fd = os.open(folder / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None


@contextlib.contextmanager
def render_slot(cache_folder: Path) -> Iterator[None]:
    """Hold one render slot for the block; :class:`RenderError` (503, busy) when none frees in time."""
    folder = cache_folder / ".render-slots"
    folder.mkdir(mode=0o700, exist_ok=True)
    count = slot_count()
    deadline = time.monotonic() + float(current_app.config.get("SELF_BILLING_PDF_QUEUE_SECONDS") or 0)
    pause = 0.02
    while (fd := _try_slot(folder, count)) is None:
        if time.monotonic() >= deadline:
            log.warning("Invoice PDF: all %d render slots stayed busy; answered 503 (raise "
                        "SELF_BILLING_PDF_CONCURRENCY or SELF_BILLING_PDF_QUEUE_SECONDS if this is frequent).", count)
            raise RenderError(BUSY_MESSAGE, code="pdf_busy", retry_after=BUSY_RETRY_AFTER)
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 0.25)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
