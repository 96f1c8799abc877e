"""setup.cfg's floors are the versions the lowest-versions CI run proves (.ci/constraints-lowest.txt)."""
from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_install_requires_floors_are_the_pinned_lowest_versions():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    floors = {}
    # The runtime dependencies, and the optional Stripe gateway's (its extra is installed in CI's runs).
    for line in (config["options"]["install_requires"] + "\n" + config["options.extras_require"]["stripe"]).split("\n"):
        if line.strip():
            name, version = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)>=(\S+)", line).groups()
            floors[name.lower()] = version
    pins = {}
    for line in (ROOT / ".ci" / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    assert floors == pins
