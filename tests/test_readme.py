"""The README documents every configuration key with its default, and its two commands exist."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from flask import Flask

from plugin.config import DEFAULTS
from plugin.demo import settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def documented_rows() -> dict[str, str]:
    """key -> the README table row that documents it."""
    rows: dict[str, str] = {}
    for line in README.splitlines():
        if line.startswith("| `"):
            for key in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]):
                rows[key] = line
    return rows


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_plugin_config_key_is_documented_with_its_default(key):
    row = documented_rows().get(key)
    assert row is not None, f"README.md's configuration table lacks {key} (plugin/config.py)"
    default = DEFAULTS[key]
    shown = f'`"{default}"`' if isinstance(default, str) else f"`{default}`"
    assert shown in row.split("|")[2], f"README.md shows another default for {key}: expected {shown}"


def test_every_demo_config_key_is_documented():
    keys = settings.defaults(Flask("x"))
    rows = documented_rows()
    missing = sorted(key for key in keys if key not in rows)
    assert missing == [], f"README.md's demo host table lacks {missing}"


@pytest.mark.parametrize("script", ["scripts/demo", "scripts/test", ".ci/run", "scripts/make-migration"])
def test_scripts_named_in_the_readme_exist_and_are_executable(script):
    assert script.split("/")[-1] in README
    path = ROOT / script
    assert path.is_file() and os.access(path, os.X_OK)
    assert "set -euo pipefail" in path.read_text()
