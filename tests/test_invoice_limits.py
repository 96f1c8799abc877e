"""Invoice rendering under load and the cache's size: at most SELF_BILLING_PDF_CONCURRENCY wkhtmltopdf at
once (the rest wait, or answer 503 with Retry-After when the wait is over), and the cache kept under
SELF_BILLING_INVOICE_CACHE_MAX_MB, least recently used files first."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.parts import WKHTMLTOPDF, need_wkhtmltopdf
from tests.test_invoices import address, pdf_text, write_script

PREFIX = "/billing"


@pytest.fixture
def shop_app(make_app, tmp_path):
    need_wkhtmltopdf()
    app = make_app(SELF_BILLING_INVOICE_CACHE_DIR=str(tmp_path / "invoices"), SELF_BILLING_MERCHANT_NAME="Acme")
    app.extensions["self_billing"].agent_loader = lambda: "agent@helpdesk.example.com"
    from tests.conftest import Ledger

    ledger = Ledger(app)
    ledger.settings(enabled=True)
    ledger.price("pro-monthly")
    for n in range(1, 4):
        ledger.order(f"ORD-{n}", email=f"c{n}@example.com",
                     billing_address=address(name=f"Customer {n}", line1="1 Main St", city="Springfield"))
        ledger.payment(f"ORD-{n}", f"pay_{n}", "2026-10-01T10:00:00Z")
    return app


def _counting_renderer(tmp_path: Path, seconds: float = 1.0) -> tuple[str, Path]:
    """A wkhtmltopdf that logs when it starts and ends, and takes ``seconds`` longer than the real one."""
    log = tmp_path / "runs.log"
    script = write_script(tmp_path / "slow-wkhtmltopdf",
                          f'echo start >> {log}\nsleep {seconds}\n{WKHTMLTOPDF} "$@"\nrc=$?\necho end >> {log}\n'
                          "exit $rc\n")
    return script, log


def _most_at_once(log: Path) -> int:
    running = most = 0
    for line in log.read_text().split():
        running += 1 if line == "start" else -1
        most = max(most, running)
    return most


def _download_all(app, payment_ids: list[str]) -> dict[str, object]:
    answers: dict[str, object] = {}

    def get(payment_id: str) -> None:
        answers[payment_id] = app.test_client().get(f"{PREFIX}/api/agent/payments/{payment_id}/invoice.pdf")

    threads = [threading.Thread(target=get, args=(payment_id,)) for payment_id in payment_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_renders_beyond_the_limit_wait_for_a_free_slot(shop_app, tmp_path):
    script, log = _counting_renderer(tmp_path, 0.5)
    shop_app.config.update(SELF_BILLING_WKHTMLTOPDF=script, SELF_BILLING_PDF_CONCURRENCY=2,
                           SELF_BILLING_PDF_QUEUE_SECONDS=30)
    answers = _download_all(shop_app, ["pay_1", "pay_2", "pay_3"])
    assert {payment_id: answer.status_code for payment_id, answer in answers.items()} == {
        "pay_1": 200, "pay_2": 200, "pay_3": 200}
    assert "Customer 3" in pdf_text(answers["pay_3"].data)
    assert log.read_text().split().count("start") == 3
    assert _most_at_once(log) == 2


def test_a_render_that_waits_too_long_is_a_503_with_retry_after_and_the_next_try_works(shop_app, tmp_path):
    script, log = _counting_renderer(tmp_path, 2.0)
    shop_app.config.update(SELF_BILLING_WKHTMLTOPDF=script, SELF_BILLING_PDF_CONCURRENCY=1,
                           SELF_BILLING_PDF_QUEUE_SECONDS=0.3)
    answers = _download_all(shop_app, ["pay_1", "pay_2"])
    codes = sorted(answer.status_code for answer in answers.values())
    assert codes == [200, 503]
    [busy] = [answer for answer in answers.values() if answer.status_code == 503]
    assert busy.headers["Retry-After"] == "5"
    error = busy.get_json()["error"]
    assert error["code"] == "pdf_busy" and "try again in a few seconds" in error["message"]
    assert _most_at_once(log) == 1
    [waited] = [payment_id for payment_id, answer in answers.items() if answer.status_code == 503]
    again = shop_app.test_client().get(f"{PREFIX}/api/agent/payments/{waited}/invoice.pdf")
    assert again.status_code == 200


def test_a_cached_invoice_needs_no_slot(shop_app, tmp_path):
    first = shop_app.test_client().get(f"{PREFIX}/api/agent/payments/pay_1/invoice.pdf")
    assert first.status_code == 200
    script, _log = _counting_renderer(tmp_path, 3.0)
    shop_app.config.update(SELF_BILLING_WKHTMLTOPDF=script, SELF_BILLING_PDF_CONCURRENCY=1,
                           SELF_BILLING_PDF_QUEUE_SECONDS=0.2)
    answers = _download_all(shop_app, ["pay_2", "pay_1"])  # pay_2 renders and holds the only slot
    assert answers["pay_1"].status_code == 200 and answers["pay_1"].data == first.data


# -- the cache's size ------------------------------------------------------------------------------


def _fill(folder: Path, name: str, size: int, age_seconds: float) -> Path:
    path = folder / name
    path.write_bytes(b"%PDF-" + b"x" * (size - 5))
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_tick_keeps_the_cache_under_its_limit_least_recently_used_first(shop_app, tmp_path):
    folder = tmp_path / "invoices"
    folder.mkdir(exist_ok=True)
    shop_app.config["SELF_BILLING_INVOICE_CACHE_MAX_MB"] = 1  # 1,048,576 bytes
    kib = 1024
    oldest = _fill(folder, "a" * 64 + ".pdf", 400 * kib, 5000)
    older = _fill(folder, "b" * 64 + ".pdf", 400 * kib, 4000)
    recent = _fill(folder, "c" * 64 + ".pdf", 400 * kib, 10)
    stale_temp = _fill(folder, ".tmp-crashed.pdf", 10 * kib, 7200)
    fresh_temp = _fill(folder, ".tmp-rendering.pdf", 10 * kib, 5)
    result = shop_app.test_cli_runner().invoke(args=["self-billing", "tick"])
    assert result.exit_code == 0, result.output
    assert "Deleted 2 cached invoice file(s) beyond SELF_BILLING_INVOICE_CACHE_MAX_MB." in result.output
    # 1,200 KiB is over 1 MiB: the least recently used go until the rest is under 90 % of it
    assert not oldest.exists() and older.exists() and recent.exists()
    assert not stale_temp.exists() and fresh_temp.exists()


def test_a_download_marks_its_file_used_so_pruning_keeps_it(shop_app, tmp_path):
    folder = tmp_path / "invoices"
    first = shop_app.test_client().get(f"{PREFIX}/api/agent/payments/pay_1/invoice.pdf")
    assert first.status_code == 200
    [served] = [path for path in folder.iterdir() if path.suffix == ".pdf"]
    size = served.stat().st_size
    stamp = time.time() - 3 * 3600
    os.utime(served, (stamp, stamp))
    other = _fill(folder, "d" * 64 + ".pdf", size, 2 * 3600)  # used more recently than `served` was
    assert shop_app.test_client().get(f"{PREFIX}/api/agent/payments/pay_1/invoice.pdf").data == first.data
    assert time.time() - served.stat().st_mtime < 60  # marked used now
    shop_app.config["SELF_BILLING_INVOICE_CACHE_MAX_MB"] = (size * 1.5) / (1024 * 1024)
    shop_app.test_cli_runner().invoke(args=["self-billing", "tick"])
    assert served.exists() and not other.exists()
