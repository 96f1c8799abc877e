"""Mermaid state diagrams of the request machines, generated from their definitions.

``python -m plugin.workflows.diagrams > docs/workflows.md`` rewrites the docs page;
a test fails when the page and the definitions disagree.
"""
from __future__ import annotations

from .machines import AGENT_EVENTS, DEFINITIONS, OUTCOMES, PROCESSOR_EVENTS, as_list

_TITLES = {"cancellation": "Cancellation requests", "refund": "Refund requests"}


def _sources(row: dict) -> list[str]:
    return as_list(row["source"])


def _conditions(row: dict) -> list[str]:
    return as_list(row.get("conditions"))


def mermaid(request_type: str) -> str:
    """The machine of ``request_type`` as a Mermaid ``stateDiagram-v2``."""
    lines = ["stateDiagram-v2", "    [*] --> new"]
    for row in DEFINITIONS[request_type]:
        label = row["trigger"]
        conditions = _conditions(row)
        if conditions:
            label += " [" + ", ".join(conditions) + "]"
        for source in _sources(row):
            lines.append(f"    {source} --> {row['dest']}: {label}")
    lines.append("    resolved --> [*]")
    return "\n".join(lines)


def _table(request_type: str) -> str:
    rows = ["| event | from | to | conditions | does | outcome |", "| --- | --- | --- | --- | --- | --- |"]
    for row in DEFINITIONS[request_type]:
        event = row["trigger"]
        marks = []
        if event in AGENT_EVENTS[request_type]:
            marks.append("agent")
        if event in PROCESSOR_EVENTS:
            marks.append("after the processor confirms")
        rows.append(
            f"| `{event}`{' (' + ', '.join(marks) + ')' if marks else ''} | {', '.join(_sources(row))} "
            f"| {row['dest']} | {', '.join(_conditions(row)) or '—'} | {', '.join(as_list(row.get('after'))) or '—'} "
            f"| {OUTCOMES[request_type].get(event, '—')} |"
        )
    return "\n".join(rows)


def render_docs() -> str:
    """The whole ``docs/workflows.md`` page."""
    parts = [
        "# Request workflows",
        "",
        "Generated from `plugin/workflows/machines.py` by `python -m plugin.workflows.diagrams`;",
        "`tests/test_workflow_docs.py` fails when this page and the code disagree.",
        "",
        "Every request starts at `new` (never stored) and is saved as `requested`. Conditions are",
        "predicates of `plugin.workflows.context.RequestContext`; `does` names its effects, in order",
        "(methods of the same class: the ledger change, ticket, outcome, closing, email). Every",
        "transition also writes an audit row (`write_history`: from, to, event, time, actor).",
        "Events marked *after the processor confirms* are fired only once the payment processor has",
        "answered, with the request's id as the idempotency key (see `docs/architecture.md`).",
    ]
    for request_type in DEFINITIONS:
        parts += ["", f"## {_TITLES[request_type]}", "", "```mermaid", mermaid(request_type), "```", "",
                  _table(request_type)]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_docs(), end="")
