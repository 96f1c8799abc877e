"""The workflow diagrams in docs/ are generated from the machine definitions and must match them."""
from __future__ import annotations

from pathlib import Path

from plugin.workflows.diagrams import mermaid, render_docs
from plugin.workflows.machines import DEFINITIONS

DOCS = Path(__file__).resolve().parent.parent / "docs" / "workflows.md"


def test_docs_match_the_machine_definitions():
    assert DOCS.read_text() == render_docs(), (
        "docs/workflows.md is out of date: run `python -m plugin.workflows.diagrams > docs/workflows.md`"
    )


def test_every_transition_is_drawn():
    for request_type, rows in DEFINITIONS.items():
        diagram = mermaid(request_type)
        for row in rows:
            assert f"--> {row['dest']}: {row['trigger']}" in diagram
