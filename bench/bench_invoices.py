"""What an invoice download costs: first render against bare wkhtmltopdf, repeat downloads
against a bare Flask endpoint.

* bare wkhtmltopdf: the same invoice HTML through ``wkhtmltopdf --quiet --javascript-delay 0
  --disable-javascript - out.pdf`` (the fastest options that still render it correctly,
  see shared/dependency-notes.md): the floor of any first render.
* first render: ``GET /billing/portal/payments/<id>/invoice.pdf`` with an empty cache, through
  the Flask test client: login check, ledger query, template, hash, the locked-down
  wkhtmltopdf run with its time limit, atomic write, ``send_file``.
* cached download: the same request again (the file is on disk).
* 100 downloads in a row: the same, one after the other; total and per download.
* bare Flask endpoints: a route returning a short string, and a route that ``send_file``\\s the
  same PDF, on the same app through the same test client.

Aims (issue 5): first render within 1.3x of bare wkhtmltopdf; repeat download within 2x of
a bare Flask endpoint.

    python bench/bench_invoices.py [--renders N] [--rounds N]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask, send_file  # noqa: E402

from plugin import SelfBilling  # noqa: E402
from plugin.db import db  # noqa: E402
from plugin.invoices.content import find_inputs, invoice_html  # noqa: E402
from plugin.ledger import service as ledger  # noqa: E402
from plugin.ledger.schemas import OrderIn, PaymentIn, PricePointIn, SettingsIn  # noqa: E402

URL = "/billing/portal/payments/pay_1/invoice.pdf"


def make_app(folder: Path) -> Flask:
    app = Flask("bench_host", instance_path=str(folder / "instance"))
    app.config.update(
        SECRET_KEY="bench",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'billing.db'}",
        SELF_BILLING_INVOICE_CACHE_DIR=str(folder / "invoices"),
        SELF_BILLING_MERCHANT_NAME="Acme Tools Ltd",
        SELF_BILLING_MERCHANT_ADDRESS="1 Market Way\nLondon EC1A 1AA",
        SELF_BILLING_MERCHANT_TAX_ID="GB123456789",
    )
    SelfBilling(app)
    pdf_holder: dict[str, Path] = {}

    @app.get("/bare")
    def bare():
        return "ok"

    @app.get("/bare-file")
    def bare_file():
        return send_file(pdf_holder["path"], mimetype="application/pdf", as_attachment=True,
                         download_name="invoice.pdf")

    app.extensions["bench_pdf"] = pdf_holder
    with app.app_context():
        from plugin.schema import init_db

        init_db()
        ledger.update_settings(SettingsIn.model_validate({"enabled": True}))
        ledger.upsert_price_point("pro", PricePointIn.model_validate({
            "product": "Pro Plan", "amount": "49.00", "currency": "USD", "interval": "month",
            "interval_count": 1, "cancellation": "instant", "refund_window_days": 30}))
        ledger.upsert_order("ORD-1", OrderIn.model_validate({
            "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "price_point": "pro",
            "purchased_at": "2026-10-01T10:00:00Z",
            "billing_address": {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "region": "IL",
                                "postal_code": "62701", "country": "US"},
            "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12,
                               "exp_year": 2030}}))
        ledger.record_payment("ORD-1", PaymentIn.model_validate(
            {"payment_id": "pay_1", "paid_at": "2026-10-01T10:00:00Z"}))
    return app


def logged_in_client(app: Flask):
    """A test client logged in as the one customer, through the portal's JSON login."""
    client = app.test_client()
    response = client.post("/billing/api/portal/login", json={"order_id": "ORD-1", "email": "ann@example.com"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return client


def invoice_html_for(app: Flask, payment_id: str) -> str:
    """The HTML the plugin renders for ``payment_id``'s invoice (the payment must have its invoice issued)."""
    with app.test_request_context():
        with db.engine.connect() as connection:
            row = find_inputs(connection, payment_id)
        if row is None or row.number is None:
            raise LookupError(f"payment {payment_id!r} has no invoice yet: download it once first")
        return invoice_html(row.content)


def bare_wkhtmltopdf(binary: str, html: str, out: Path) -> None:
    """Bare wkhtmltopdf on ``html``: the floor of any first render."""
    subprocess.run([binary, "--quiet", "--javascript-delay", "0", "--disable-javascript", "-", str(out)],
                   input=html.encode(), check=True, capture_output=True)


def first_render_once(app: Flask, client, url: str, folder: Path, counter=iter(range(10**9))) -> None:
    """One download of ``url`` with an empty cache (a fresh cache folder under ``folder``), then the
    cache folder is put back as it was."""
    before = app.config["SELF_BILLING_INVOICE_CACHE_DIR"]
    app.config["SELF_BILLING_INVOICE_CACHE_DIR"] = str(folder / f"cache-{next(counter)}")
    try:
        response = client.get(url)
        assert response.status_code == 200 and response.data.startswith(b"%PDF-"), response.status_code
    finally:
        app.config["SELF_BILLING_INVOICE_CACHE_DIR"] = before


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=15, help="first renders and bare runs to time (median)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 100 requests of each kind (median)")
    args = parser.parse_args()
    binary = shutil.which("wkhtmltopdf")
    if binary is None:
        sys.exit("wkhtmltopdf is not installed (apt-get install wkhtmltopdf).")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        app = make_app(folder)
        client = logged_in_client(app)
        html = invoice_html_for(app, "pay_1")

        # bare wkhtmltopdf on the same HTML
        out = folder / "bare.pdf"

        def bare_render() -> None:
            bare_wkhtmltopdf(binary, html, out)

        # first render through the plugin: a fresh cache folder each time
        def first_render() -> None:
            first_render_once(app, client, URL, folder)

        bare_render()
        first_render()  # warm up imports, templates, the renderer
        bare_times, first_times = [], []
        for _ in range(args.renders):  # interleaved, so load on the machine hits both alike
            bare_times += timed(bare_render, 1)
            first_times += timed(first_render, 1)

        # cached downloads
        app.config["SELF_BILLING_INVOICE_CACHE_DIR"] = str(folder / "cache-hot")
        assert client.get(URL).status_code == 200
        app.extensions["bench_pdf"]["path"] = next((folder / "cache-hot").glob("*.pdf"))

        def cached() -> None:
            response = client.get(URL)
            assert response.status_code == 200
            response.close()

        def bare_endpoint() -> None:
            client.get("/bare").close()

        def bare_file_endpoint() -> None:
            client.get("/bare-file").close()

        for fn in (cached, bare_endpoint, bare_file_endpoint):
            timed(fn, 50)  # warm up
        # rounds of 100 in a row, interleaved, so load on the machine hits all three alike
        rounds: dict[str, list[float]] = {"cached": [], "bare": [], "bare_file": []}
        singles: dict[str, list[float]] = {"cached": [], "bare": [], "bare_file": []}
        for _ in range(args.rounds):
            for name, fn in (("cached", cached), ("bare", bare_endpoint), ("bare_file", bare_file_endpoint)):
                times = timed(fn, 100)
                rounds[name].append(sum(times))
                singles[name] += times

    med = statistics.median
    bare_ms, first_ms = med(bare_times) * 1e3, med(first_times) * 1e3
    cached_us, flask_us, file_us = (med(singles[k]) * 1e6 for k in ("cached", "bare", "bare_file"))
    hundred_ms, hundred_bare_ms, hundred_file_ms = (med(rounds[k]) * 1e3 for k in ("cached", "bare", "bare_file"))
    rows = [
        ("bare wkhtmltopdf (same HTML)", f"{bare_ms:8.1f} ms", "1.00x"),
        ("first render (HTTP, empty cache)", f"{first_ms:8.1f} ms", f"{first_ms / bare_ms:.2f}x of bare wkhtmltopdf"),
        ("bare Flask endpoint ('ok')", f"{flask_us:8.0f} µs", "1.00x"),
        ("bare Flask send_file (same PDF)", f"{file_us:8.0f} µs", f"{file_us / flask_us:.2f}x of bare endpoint"),
        ("cached download", f"{cached_us:8.0f} µs",
         f"{cached_us / flask_us:.2f}x of bare endpoint, {cached_us / file_us:.2f}x of bare send_file"),
        ("100 cached downloads in a row", f"{hundred_ms:8.1f} ms",
         f"{hundred_ms / hundred_bare_ms:.2f}x of 100 bare endpoint, {hundred_ms / hundred_file_ms:.2f}x of 100 bare send_file"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"Invoice PDFs: medians of {args.renders} renders and {args.rounds} rounds of 100 requests "
          "(Flask test client, SQLite)")
    for name, value, ratio in rows:
        print(f"  {name:<{width}}  {value}  {ratio}")


if __name__ == "__main__":
    main()
