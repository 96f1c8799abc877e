"""What the outbox worker did: counts of one or more batches and rounds, and a summary for people."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkerReport:
    """What one or more rounds did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: WorkerReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.released += other.released
        self.batches += other.batches
        self.errors = (self.errors + other.errors)[-20:]  # the latest few: a long-running loop keeps no history

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed

    def summary(self) -> str:
        if not self.handled and not self.released:
            return "No email was due."
        parts = [f"sent {self.sent}"]
        if self.retried:
            parts.append(f"{self.retried} to retry later")
        if self.failed:
            parts.append(f"{self.failed} failed (see GET /api/admin/email-outbox?status=failed)")
        if self.released:
            parts.append(f"{self.released} handed back unsent")
        return "Emails: " + ", ".join(parts) + "."
