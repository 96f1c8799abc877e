"""The plugin finds its templates whatever pip left behind."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

from plugin import templating


def test_an_empty_folder_left_by_an_uninstalled_copy_is_passed_over(tmp_path, monkeypatch):
    # `pip install .` then `pip install -e .` (the demo, then the tests) leaves the first copy's
    # empty folders in site-packages, listed first by the namespace package.
    leftover = tmp_path / "site-packages" / "self_billing_templates"
    (leftover / "self_billing" / "portal").mkdir(parents=True)
    checkout = Path(templating.__file__).resolve().parent.parent / "templates"
    spec = SimpleNamespace(submodule_search_locations=[str(leftover), str(checkout)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)

    assert templating.find_template_folder() == str(checkout)
