"""HTML to PDF with wkhtmltopdf, locked down and with a time limit.

pdfkit builds the command line (:func:`pdfkit_command`); we run it ourselves with
:mod:`subprocess` because pdfkit has no timeout. The options:

* ``--disable-javascript`` and ``--javascript-delay 0``: an invoice needs no script,
  and the default 200 ms delay would be most of the render time.
* ``--disable-local-file-access`` (0.12.6's default, said out loud):
  ``file://`` URLs load nothing. ``--enable-local-file-access`` is never passed.
* No network: every request goes to a "proxy" on a loopback port that this process
  holds bound but never listens on, so each connection is refused at once and no
  other program can take that port. ``--proxy-hostname-lookup`` leaves name lookups to
  that proxy, so not even a DNS query leaves the machine.
* ``--load-error-handling ignore`` / ``--load-media-error-handling ignore``: a blocked
  resource (say, a merchant's template that names a web font) does not stop the render.
* ``--quiet``.

The HTML goes in on stdin; the PDF is written to the path the caller gives (a temp
file next to its final place, see :mod:`plugin.invoices.cache`). The process runs in
its own process group, which is killed whole when the time is up. A result that is
not a complete PDF is never accepted.

pdfkit reads options from ``<meta name="pdfkit-...">`` tags in the HTML it is given;
we hand pdfkit an empty document and pipe the real HTML ourselves, so nothing in an
invoice (a merchant's template, a customer's text) can add command-line options.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections import OrderedDict

import pdfkit
from flask import current_app

from ..errors import Unavailable

log = logging.getLogger(__name__)

#: Bump when the rendering changes in a way the options do not show; it is part of every cache key.
RENDERER_VERSION = "1"

#: What a person reads when the binary cannot be found.
MISSING_MESSAGE = (
    "Invoices cannot be made right now: wkhtmltopdf is not installed on the server. "
    "Install it (apt-get install wkhtmltopdf) or set SELF_BILLING_WKHTMLTOPDF."
)
TIMEOUT_MESSAGE = (
    "Making the invoice took too long and was stopped. Please try again in a minute; "
    "if it keeps failing, contact us and we will send it to you."
)
FAILED_MESSAGE = (
    "The invoice could not be made just now. Please try again in a minute; "
    "if it keeps failing, contact us and we will send it to you."
)

#: Placeholder for the proxy address in :func:`cache_options` (the port differs per process).
_PROXY_PLACEHOLDER = "blackhole"


class RenderError(Unavailable):
    """wkhtmltopdf is missing, too slow or failed: 503 with a message to install or retry."""


def find_wkhtmltopdf() -> str | None:
    """Absolute path of the configured wkhtmltopdf, or None when it is missing or not executable.

    ``SELF_BILLING_WKHTMLTOPDF`` may be a path or a program name looked up on PATH;
    unset, ``wkhtmltopdf`` is looked up on PATH.
    """
    configured = current_app.config.get("SELF_BILLING_WKHTMLTOPDF") or "wkhtmltopdf"
    found = shutil.which(str(configured))
    return os.path.abspath(found) if found else None


def require_wkhtmltopdf() -> str:
    """Like :func:`find_wkhtmltopdf`, but a missing binary is a :class:`RenderError` (and a log line)."""
    binary = find_wkhtmltopdf()
    if binary is None:
        configured = current_app.config.get("SELF_BILLING_WKHTMLTOPDF")
        log.error(
            "Invoice PDF: wkhtmltopdf not found (SELF_BILLING_WKHTMLTOPDF=%r, PATH=%r). "
            "Install it (apt-get install wkhtmltopdf) or point SELF_BILLING_WKHTMLTOPDF at it.",
            configured,
            os.environ.get("PATH", ""),
        )
        raise RenderError(MISSING_MESSAGE, code="pdf_unavailable")
    return binary


# -- the network black hole -------------------------------------------------------------

_blackhole_lock = threading.Lock()
_blackhole: socket.socket | None = None


def blackhole_address() -> str:
    """``127.0.0.1:PORT`` of a socket this process keeps bound and never listens on.

    A connection to it is refused at once, and while we hold it no other program
    can listen there, so it is a proxy that reaches nothing.
    """
    global _blackhole
    with _blackhole_lock:
        if _blackhole is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            _blackhole = sock
        return "127.0.0.1:%d" % _blackhole.getsockname()[1]


# -- options and command ------------------------------------------------------------------


def _options(proxy: str) -> "OrderedDict[str, str]":
    return OrderedDict(
        [
            ("--encoding", "UTF-8"),
            ("--page-size", "A4"),
            ("--margin-top", "12mm"),
            ("--margin-bottom", "12mm"),
            ("--margin-left", "12mm"),
            ("--margin-right", "12mm"),
            ("--disable-javascript", ""),
            ("--javascript-delay", "0"),
            ("--disable-local-file-access", ""),
            ("--proxy", proxy),
            ("--proxy-hostname-lookup", ""),
            ("--load-error-handling", "ignore"),
            ("--load-media-error-handling", "ignore"),
            ("--quiet", ""),
        ]
    )


def cache_options() -> str:
    """The options and renderer version as text, for the cache key (the proxy port left out)."""
    parts = [f"renderer={RENDERER_VERSION}"]
    parts += [f"{k}={v}" for k, v in _options(_PROXY_PLACEHOLDER).items()]
    return "\n".join(parts)


def pdfkit_command(binary: str, output_path: str) -> list[str]:
    """The wkhtmltopdf command line, built by pdfkit: HTML from stdin, PDF to ``output_path``."""
    configuration = pdfkit.configuration(wkhtmltopdf=binary)
    # An empty source: pdfkit would otherwise read options from <meta name="pdfkit-..."> tags.
    kit = pdfkit.PDFKit("", "string", options=_options(blackhole_address()), configuration=configuration)
    command = kit.command(output_path)
    if "--enable-local-file-access" in command:  # pragma: no cover - guards a future edit
        raise RuntimeError("refusing to run wkhtmltopdf with local file access")
    return command


def _looks_complete(path: str) -> bool:
    """A PDF header at the start and an ``%%EOF`` marker at the end."""
    try:
        with open(path, "rb") as fh:
            if fh.read(5) != b"%PDF-":
                return False
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 1024))
            return b"%%EOF" in fh.read()
    except OSError:
        return False


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass


def render_pdf(html: str, output_path: str) -> None:
    """Render ``html`` to a PDF at ``output_path``, or raise :class:`RenderError`.

    On failure ``output_path`` may hold a partial file; the caller removes it.
    """
    binary = require_wkhtmltopdf()
    timeout = float(current_app.config["SELF_BILLING_PDF_TIMEOUT"])
    command = pdfkit_command(binary, output_path)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, killed whole on timeout
        )
    except OSError as exc:  # vanished or not runnable between the lookup and now
        log.error("Invoice PDF: could not start %s: %s", binary, exc)
        raise RenderError(MISSING_MESSAGE, code="pdf_unavailable") from None
    try:
        _stdout, stderr = process.communicate(html.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.wait()
        log.error("Invoice PDF: %s took more than %ss and was killed.", binary, timeout)
        raise RenderError(TIMEOUT_MESSAGE, code="pdf_timeout", retry_after=30) from None
    except BaseException:
        _kill_group(process)
        process.wait()
        raise
    stderr_text = stderr.decode("utf-8", "replace").strip()
    complete = _looks_complete(output_path)
    if process.returncode == 0 and complete:
        return
    if process.returncode == 1 and complete:
        # 0.12.6 exits 1 when a resource could not be loaded, yet writes the whole PDF.
        log.warning("Invoice PDF: a resource of the invoice could not be loaded (blocked?): %s", stderr_text)
        return
    log.error(
        "Invoice PDF: %s exited with %s (complete PDF: %s). Its output: %s",
        binary,
        process.returncode,
        complete,
        stderr_text or "(nothing)",
    )
    raise RenderError(FAILED_MESSAGE, code="pdf_failed", retry_after=30)
