"""docs/workflows.md, as committed, draws the request machines the plugin runs.

The page is generated (``python -m plugin.workflows.diagrams``); a reader trusts its diagrams and
tables to say which events move a request where, under which conditions, with which effects. The
checks read the committed page and compare it with the machines as ``transitions`` built them
(:data:`plugin.workflows.machines.MACHINES`), not with the tables the page was generated from.
"""
from __future__ import annotations

import re
from pathlib import Path

from plugin.workflows.diagrams import render_docs
from plugin.workflows.machines import MACHINES

DOCS = Path(__file__).resolve().parent.parent / "docs" / "workflows.md"
ARROW = re.compile(r"^\s*(\w+) --> (\w+): (\w+)(?: \[(.*)\])?$")

Edge = tuple[str, str, str, tuple[str, ...]]  # (from, to, event, conditions)


def _built(request_type: str) -> dict[Edge, tuple[str, ...]]:
    """Every transition of the built machine: (from, to, event, conditions) -> its effects, in order."""
    found = {}
    for event_name, event in MACHINES[request_type].events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                conditions = tuple(c.func if c.target else f"not {c.func}" for c in transition.conditions)
                found[(source, transition.dest, event_name, conditions)] = tuple(transition.after)
    return found


def _sections() -> dict[str, str]:
    """The committed page's section of each request type ("## Cancellation requests" -> "cancellation")."""
    sections = {}
    for part in re.split(r"^## ", DOCS.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        (request_type,) = [name for name in MACHINES if title.lower().startswith(name)]
        sections[request_type] = body
    return sections


def _drawn(section: str) -> set[Edge]:
    (diagram,) = re.findall(r"```mermaid\n(.*?)```", section, flags=re.S)
    edges = set()
    for line in diagram.splitlines():
        match = ARROW.match(line)
        if match:
            source, dest, event, conditions = match.groups()
            edges.add((source, dest, event, tuple(c.strip() for c in conditions.split(","))
                       if conditions else ()))
    return edges


def _tabled(section: str) -> dict[Edge, tuple[str, ...]]:
    """The table's rows, one per (from, to, event, conditions): what each transition does."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        event = re.match(r"`(\w+)`", cells["event"]).group(1)
        split = lambda text: tuple(x.strip() for x in text.split(",")) if text != "—" else ()  # noqa: E731
        for source in split(cells["from"]):
            rows[(source, cells["to"], event, split(cells["conditions"]))] = split(cells["does"])
    return rows


def test_the_committed_page_is_a_fresh_render():
    assert DOCS.read_text() == render_docs(), (
        "docs/workflows.md is out of date: run `python -m plugin.workflows.diagrams > docs/workflows.md`"
    )


def test_every_transition_the_machines_run_is_drawn_and_nothing_else():
    sections = _sections()
    assert set(sections) == set(MACHINES), "a section per request type"
    for request_type, section in sections.items():
        built = _built(request_type)
        assert built, request_type
        drawn = _drawn(section)
        assert sorted(set(built) - drawn) == [], f"{request_type}: transitions missing from the diagram"
        assert sorted(drawn - set(built)) == [], f"{request_type}: the diagram draws transitions that do not exist"


def test_the_table_says_what_each_transition_does():
    for request_type, section in _sections().items():
        assert _tabled(section) == _built(request_type), request_type
