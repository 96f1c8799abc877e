"""The real parts some tests need (wkhtmltopdf, Chromium, aiosmtpd, Schemathesis): one rule for all.

Without the part, a test is skipped with a reason that says how to get it; with ``CI=true`` it
fails instead, so a CI machine that lacks a part can never pass by skipping.
"""
from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

WKHTMLTOPDF: str | None = shutil.which("wkhtmltopdf")


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing_part(reason: str) -> NoReturn:
    """Skip the test (or the module, when called at import) for a missing part; fail under CI=true."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a test whose part is missing fails)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_wkhtmltopdf() -> str:
    """The wkhtmltopdf binary on PATH, or the test stops here (see ``missing_part``)."""
    if WKHTMLTOPDF is None:
        missing_part("wkhtmltopdf is not installed (apt-get install wkhtmltopdf)")
    return WKHTMLTOPDF
