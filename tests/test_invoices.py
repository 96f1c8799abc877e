"""Invoice PDFs through HTTP: what they say (read back with pypdf), who may download them,
that customer text stays text and reaches nothing, and how a missing, hanging or crashing
wkhtmltopdf and the cache behave.

These tests run the real wkhtmltopdf; without it they are skipped, except with ``CI=true``,
where they fail.
"""
from __future__ import annotations

import io
import os
import re
import socket
import stat
import struct
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from babel.dates import format_date
from pypdf import PdfReader
from sqlalchemy import select

from plugin.db import db
from plugin.ledger.models import Lead, Payment, Refund
from plugin.ledger.schemas import OrderIn
from tests.conftest import Ledger
from tests.parts import WKHTMLTOPDF, need_wkhtmltopdf

PREFIX = "/billing"
TODAY = datetime.now(timezone.utc).date()


@pytest.fixture(autouse=True)
def _needs_wkhtmltopdf():
    need_wkhtmltopdf()


# -- helpers ---------------------------------------------------------------------------------


def tiny_png() -> bytes:
    """A valid 2x2 red PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pdf_text(data: bytes) -> str:
    """All text of a PDF with whitespace normalised (wkhtmltopdf puts tabs between words)."""
    assert data.startswith(b"%PDF-"), data[:100]
    reader = PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def words_with_positions(data: bytes) -> list[tuple[str, float, float, float, float]]:
    """(text, x, y, page width, page height) of each text run on the first page."""
    page = PdfReader(io.BytesIO(data)).pages[0]
    runs: list[tuple[str, float, float, float, float]] = []
    width, height = float(page.mediabox.width), float(page.mediabox.height)

    def visit(text, cm, tm, _font, _size):
        if text.strip():
            # the text matrix in the user space: tm x cm
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            runs.append((" ".join(text.split()), x, y, width, height))

    page.extract_text(visitor_text=visit)
    return runs


def address(**fields: str) -> dict[str, str]:
    base = {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "region": "IL",
            "postal_code": "62701", "country": "US"}
    base.update(fields)
    return base


def login(client, app, email: str = "ann@example.com", order_id: str = "ORD-1") -> None:
    """Log the client in as the lead of ``email``: through the portal's login API when it is mounted,
    else by writing the portal's documented session keys."""
    login_url = f"{PREFIX}/api/portal/login"
    if any(rule.rule == login_url for rule in app.url_map.iter_rules()):
        response = client.post(login_url, json={"order_id": order_id, "email": email})
        assert response.status_code == 200, response.get_json()
        return
    from flask import session

    from plugin.portal.auth import SEEN_KEY, TOKEN_KEY, login_lead

    with app.test_request_context():
        login_lead(db.session.execute(select(Lead).where(Lead.email_normalized == email.lower())).scalar_one())
        keys = {key: session[key] for key in (TOKEN_KEY, SEEN_KEY)}
    with client.session_transaction() as sess:
        sess.update(keys)


def cache_files(app) -> list[str]:
    """What the cache folder holds, beside the render slots' lock files (plugin/invoices/render_slots.py)."""
    folder = Path(app.config["SELF_BILLING_INVOICE_CACHE_DIR"])
    return sorted(name for name in os.listdir(folder) if name != ".render-slots") if folder.exists() else []


def write_script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def logo(tmp_path) -> Path:
    path = tmp_path / "logo.png"
    path.write_bytes(tiny_png())
    return path


@pytest.fixture
def shop_app(make_app, tmp_path, logo):
    app = make_app(
        SELF_BILLING_INVOICE_CACHE_DIR=str(tmp_path / "invoices"),
        SELF_BILLING_MERCHANT_NAME="Acme Tools Ltd",
        SELF_BILLING_MERCHANT_ADDRESS="1 Market Way\nLondon EC1A 1AA\nUnited Kingdom",
        SELF_BILLING_MERCHANT_TAX_ID="GB123456789",
        SELF_BILLING_MERCHANT_EMAIL="billing@acme.example.com",
        SELF_BILLING_MERCHANT_LOGO_PATH=str(logo),
    )
    app.extensions["self_billing"].agent_loader = lambda: "agent@helpdesk.example.com" if _agent_on[0] else None
    return app


#: Whether the test host's agent_loader vouches for an agent (flipped by tests).
_agent_on = [True]


@pytest.fixture(autouse=True)
def _reset_agent():
    _agent_on[0] = True
    yield
    _agent_on[0] = True


@pytest.fixture
def shop(shop_app):
    """A monthly subscription ORD-1 of ann@example.com with one payment, and Bob's order ORD-2."""
    from tests.conftest import Ledger

    ledger = Ledger(shop_app)
    ledger.settings(enabled=True)
    ledger.price("pro-monthly")
    ledger.price("lifetime", product="Lifetime License", amount="199.00", currency="EUR", interval=None)
    ledger.order("ORD-1", price_point="pro-monthly", email="ann@example.com")
    ledger.payment("ORD-1", "pay_1", "2026-10-01T10:00:00Z")
    ledger.order("ORD-2", price_point="lifetime", email="bob@example.com",
                 billing_address=address(name="Bob Roe", line1="9 Elm Rd", city="Dublin", region="",
                                         postal_code="D02 XY45", country="IE"))
    ledger.payment("ORD-2", "pay_2", "2026-10-05T09:00:00Z")
    return ledger


@pytest.fixture
def customer(shop_app, shop):
    client = shop_app.test_client()
    login(client, shop_app)
    return client


def download(client, payment_id: str = "pay_1"):
    return client.get(f"{PREFIX}/portal/payments/{payment_id}/invoice.pdf")


def agent_download(app, payment_id: str):
    return app.test_client().get(f"{PREFIX}/api/agent/payments/{payment_id}/invoice.pdf")


# -- content ---------------------------------------------------------------------------------


def test_customer_downloads_the_invoice_as_invoice_pdf(customer):
    response = download(customer)
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    text = pdf_text(response.data)
    for expected in (
        "Order ID ORD-1",
        f"Invoice number: INV-{TODAY.year}-000001",  # the shop's first invoice
        f"Issue date: {format_date(TODAY, 'medium', locale='en_US')}",  # issued when the payment was recorded
        "Acme Tools Ltd", "1 Market Way", "London EC1A 1AA", "Tax ID: GB123456789", "billing@acme.example.com",
        "BILL TO Ann Lee 1 Main St Springfield, IL 62701 United States PAYMENT",
        "Pro Plan",
        "Subscription period: Oct 1, 2026 – Nov 1, 2026",
        "Total $49.00",
        "Paid on Oct 1, 2026 $49.00",
    ):
        assert expected in text, (expected, text)
    assert "Paid" in text.split()
    assert "Refund" not in text and "remaining" not in text


def test_order_id_sits_in_the_top_right_corner(customer):
    runs = words_with_positions(download(customer).data)
    label = [r for r in runs if r[0] == "Order ID"]
    value = [r for r in runs if r[0] == "ORD-1"]
    assert label and value, runs
    for _text, x, y, width, height in label + value:
        assert x > width / 2, "Order ID is not on the right half"
        assert y > height * 0.8, "Order ID is not at the top of the page"
    # nothing else is higher up on the right half
    top_right = max((r for r in runs if r[1] > r[3] / 2), key=lambda r: r[2])
    assert top_right[0] == "Order ID"


def test_merchant_logo_is_embedded(customer):
    reader = PdfReader(io.BytesIO(download(customer).data))
    assert len(reader.pages[0].images) == 1


def test_missing_logo_is_logged_and_the_invoice_still_renders(shop_app, customer, tmp_path, caplog):
    shop_app.config["SELF_BILLING_MERCHANT_LOGO_PATH"] = str(tmp_path / "no-such-logo.png")
    with caplog.at_level("ERROR", logger="plugin.invoices.content"):
        response = download(customer)
    assert response.status_code == 200
    assert "Acme Tools Ltd" in pdf_text(response.data)
    assert len(PdfReader(io.BytesIO(response.data)).pages[0].images) == 0
    assert "SELF_BILLING_MERCHANT_LOGO_PATH" in caplog.text and "no-such-logo.png" in caplog.text


def test_one_time_purchase_in_another_locale_and_currency(make_app, tmp_path):
    from tests.conftest import Ledger

    app = make_app(SELF_BILLING_INVOICE_CACHE_DIR=str(tmp_path / "inv-de"), SELF_BILLING_LOCALE="de_DE",
                   SELF_BILLING_MERCHANT_NAME="Werkzeug GmbH")
    ledger = Ledger(app)
    ledger.settings(enabled=True)
    ledger.price("lifetime", product="Lifetime License", amount="1234.50", currency="EUR", interval=None)
    ledger.order("ORD-DE", price_point="lifetime", email="eva@example.com",
                 billing_address=address(name="Eva Schmidt", line1="Hauptstr. 5", city="Berlin", region="",
                                         postal_code="10115", country="DE"))
    ledger.payment("ORD-DE", "pay_de", "2026-10-05T09:00:00Z")
    client = app.test_client()
    login(client, app, email="eva@example.com", order_id="ORD-DE")
    text = pdf_text(download(client, "pay_de").data)
    assert "Order ID ORD-DE" in text
    assert "Lifetime License" in text and "Subscription period" not in text
    assert "1.234,50 €" in text
    assert "05.10.2026" in text
    assert "10115 Berlin Deutschland" in text  # the German order: postal code first


def test_bill_to_is_the_address_of_that_payment(shop_app, shop, customer):
    before = pdf_text(download(customer).data)
    assert "1 Main St" in before

    # the customer moves; the merchant syncs the new address, then the next payment is made
    from plugin.ledger import service

    with shop_app.app_context():
        body = {
            "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "price_point": "pro-monthly",
            "purchased_at": "2026-10-01T10:00:00Z",
            "billing_address": address(name="Ann Lee-Park", line1="77 New Road", city="Portland", region="OR",
                                       postal_code="97201"),
            "payment_method": {"type": "card", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        }
        service.upsert_order("ORD-1", OrderIn.model_validate(body))
    shop.payment("ORD-1", "pay_1b", "2026-11-01T10:00:00Z")

    old = pdf_text(download(customer, "pay_1").data)
    new = pdf_text(download(customer, "pay_1b").data)
    assert old == before
    assert "Ann Lee 1 Main St Springfield, IL 62701" in old and "New Road" not in old
    assert "Ann Lee-Park 77 New Road Portland, OR 97201" in new and "1 Main St" not in new
    assert "Subscription period: Nov 1, 2026 – Dec 1, 2026" in new
    assert "Paid on Nov 1, 2026" in new and f"Invoice number: INV-{TODAY.year}-000003" in new


def _agent_refund(app, payment_id: str, amount: str) -> str:
    """Refund through the workflow engine, as an agent would; returns the refund's date as printed."""
    from plugin.workflows.service import agent_refund

    with app.app_context():
        payment = db.session.execute(select(Payment).where(Payment.payment_id == payment_id)).scalar_one()
        agent_refund(payment, "agent@helpdesk.example.com", amount)
        refund = db.session.execute(
            select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id.desc())
        ).scalars().first()
        return format_date(refund.refunded_at.date(), "medium", locale="en_US")


def credit_note(client, url: str):
    return client.get(url.removeprefix("http://localhost"))


def test_an_issued_invoice_never_changes_and_each_refund_is_a_credit_note(shop_app, customer):
    before = pdf_text(download(customer).data)

    day = _agent_refund(shop_app, "pay_1", "10.00")
    _agent_refund(shop_app, "pay_1", "39.00")
    with shop_app.app_context():  # an address change after the invoice was issued
        purchase = db.session.execute(select(Payment).where(Payment.payment_id == "pay_1")).scalar_one().purchase
        purchase.billing_address = address(name="Ann Moved", line1="5 Far Lane", city="Austin", region="TX",
                                           postal_code="73301")
        db.session.commit()
    shop_app.config["SELF_BILLING_MERCHANT_NAME"] = "Acme Renamed plc"
    assert pdf_text(download(customer).data) == before  # the same words, byte for byte in the text

    orders = customer.get(f"{PREFIX}/api/portal/purchases").get_json()["purchases"]
    [paid] = [p for o in orders for p in o["payments"] if p["payment_id"] == "pay_1"]
    number = paid["invoice_number"]
    assert number == f"INV-{TODAY.year}-000001"
    notes = paid["credit_notes"]
    assert [(n["number"], n["amount"], n["currency"]) for n in notes] == [
        (f"CN-{TODAY.year}-000001", "10.00", "USD"), (f"CN-{TODAY.year}-000002", "39.00", "USD")]
    response = credit_note(customer, notes[0]["url"])
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="credit-note.pdf"'
    text = pdf_text(response.data)
    for expected in (f"Credit note number: CN-{TODAY.year}-000001", f"Corrects invoice {number}",
                     "Payment ID: pay_1", f"Refunded on {day}", "Total credited −$10.00", "Ann Lee 1 Main St",
                     "Acme Tools Ltd"):
        assert expected in text, (expected, text)
    # another lead's credit note is not found; an agent may download any
    other = shop_app.test_client()
    login(other, shop_app, email="bob@example.com", order_id="ORD-2")
    assert credit_note(other, notes[0]["url"]).status_code == 404
    agent = shop_app.test_client().get(f"{PREFIX}/api/agent/credit-notes/{notes[1]['number']}/credit-note.pdf")
    assert agent.status_code == 200 and "Total credited −$39.00" in pdf_text(agent.data)


def test_numbers_are_gap_free_in_payment_order_and_yearly_series(shop_app, shop):
    with shop_app.app_context():
        from plugin.invoices.documents import Invoice

        numbers = db.session.execute(select(Invoice.number).order_by(Invoice.id)).scalars().all()
    assert numbers == [f"INV-{TODAY.year}-000001", f"INV-{TODAY.year}-000002"]
    shop_app.config["SELF_BILLING_INVOICE_NUMBER_FORMAT"] = "A{seq}"  # a series that never resets
    shop.payment("ORD-1", "pay_1c", "2026-11-01T10:00:00Z")
    shop.payment("ORD-1", "pay_1d", "2026-12-01T10:00:00Z")
    with shop_app.app_context():
        numbers = db.session.execute(select(Invoice.number).order_by(Invoice.id)).scalars().all()
    assert numbers[2:] == ["A1", "A2"]


# -- safety ----------------------------------------------------------------------------------


class ListeningSocket:
    """A real server on 127.0.0.1 that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                self.connections.append(data)
                try:
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\nleaked")
                except OSError:
                    pass

    def close(self) -> list[bytes]:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.connections


@pytest.fixture
def listener():
    server = ListeningSocket()
    yield server
    server.close()


def test_listening_socket_sees_a_plain_connection(listener):
    """The probe works: a connection to it is recorded (so an empty list below means none was made)."""
    with socket.create_connection(("127.0.0.1", listener.port)) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
        conn.recv(100)
    assert listener.close() == [b"GET / HTTP/1.0\r\n\r\n"]


def test_customer_markup_is_text_and_reaches_nothing(shop_app, shop, customer, listener):
    assert "root:x:0:0" in Path("/etc/passwd").read_text()
    iframe = '<iframe src="file:///etc/passwd">'
    img = f'<img src="http://127.0.0.1:{listener.port}/x">'
    shop.order("ORD-1", price_point="pro-monthly", email="ann@example.com",
               billing_address=address(name=iframe, line1=img, line2='<a href="https://example.com/">x</a>'))
    shop.payment("ORD-1", "pay_evil", "2026-11-01T10:00:00Z")

    response = download(customer, "pay_evil")
    assert response.status_code == 200
    text = pdf_text(response.data)
    assert listener.close() == []
    assert "root:x:0:0" not in text
    assert iframe in text
    assert img in text
    assert '<a href="https://example.com/">x</a>' in text


def test_renderer_reaches_no_file_and_no_network_even_for_raw_markup(shop_app, listener, tmp_path):
    """The second wall: HTML that is not escaped at all still loads no local file and opens no connection."""
    from plugin.invoices.render import render_pdf

    html = (
        "<html><body><p>raw markup</p>"
        '<iframe src="file:///etc/passwd"></iframe><object data="file:///etc/passwd"></object>'
        f'<img src="http://127.0.0.1:{listener.port}/img"><img src="https://127.0.0.1:{listener.port}/s">'
        f'<link rel="stylesheet" href="http://localhost:{listener.port}/css">'
        f'<iframe src="http://127.0.0.1:{listener.port}/frame"></iframe>'
        "</body></html>"
    )
    out = tmp_path / "raw.pdf"
    with shop_app.app_context():
        render_pdf(html, str(out))
    text = pdf_text(out.read_bytes())
    assert listener.close() == []
    assert "raw markup" in text
    assert "root:x:0:0" not in text and "leaked" not in text


# -- who may download ----------------------------------------------------------------------


def test_not_logged_in_is_401_json(shop_app, shop):
    response = download(shop_app.test_client())
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "not_logged_in"


def test_not_logged_in_page_navigation_goes_to_login(shop_app, shop):
    response = shop_app.test_client().get(
        f"{PREFIX}/portal/payments/pay_1/invoice.pdf",
        headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
    )
    assert response.status_code == 302
    assert response.headers["Location"]


def test_self_service_switched_off_stops_customer_downloads_not_agents(shop_app, shop, customer):
    Ledger(shop_app).settings(enabled=False)
    response = download(customer)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "portal_disabled"
    assert agent_download(shop_app, "pay_1").status_code == 200


@pytest.mark.parametrize("payment_id", ["pay_2", "pay_nope"])
def test_another_leads_or_unknown_payment_is_404(customer, shop_app, payment_id):
    response = download(customer, payment_id)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "payment_not_found"
    assert "Bob" not in response.get_data(as_text=True)
    assert cache_files(shop_app) == []  # nothing was rendered for it


def test_agent_downloads_any_invoice(shop_app, shop):
    response = agent_download(shop_app, "pay_2")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="invoice.pdf"'
    text = pdf_text(response.data)
    assert "Order ID ORD-2" in text and "Bob Roe" in text and "€199.00" in text
    assert agent_download(shop_app, "pay_nope").status_code == 404


def test_no_agent_is_401(shop_app, shop):
    _agent_on[0] = False
    response = agent_download(shop_app, "pay_2")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "agent_required"


# -- wkhtmltopdf missing, hanging, crashing ---------------------------------------------------


def test_missing_wkhtmltopdf_is_503_with_what_to_do(shop_app, customer, tmp_path, caplog):
    shop_app.config["SELF_BILLING_WKHTMLTOPDF"] = str(tmp_path / "no" / "wkhtmltopdf")
    with caplog.at_level("ERROR", logger="plugin.invoices.render"):
        response = download(customer)
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "pdf_unavailable"
    assert error["message"] == (
        "Invoices cannot be made right now: wkhtmltopdf is not installed on the server. "
        "Install it (apt-get install wkhtmltopdf) or set SELF_BILLING_WKHTMLTOPDF."
    )
    assert str(tmp_path / "no" / "wkhtmltopdf") in caplog.text
    assert not [name for name in cache_files(shop_app) if name.endswith(".pdf")]

    health = shop_app.test_client().get(f"{PREFIX}/healthz").get_json()
    assert health["pdf"] == "unavailable"


def test_healthz_reports_pdf_ok_when_wkhtmltopdf_is_there(shop_app):
    assert shop_app.test_client().get(f"{PREFIX}/healthz").get_json()["pdf"] == "ok"


def _process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_hanging_wkhtmltopdf_times_out_and_leaves_nothing(shop_app, customer, tmp_path):
    pid_file = tmp_path / "child.pid"
    shop_app.config["SELF_BILLING_WKHTMLTOPDF"] = write_script(
        tmp_path / "hang.sh", f"printf '%PDF-1.4 half' > \"$(eval echo \\${{$#}})\"\nsleep 60 &\necho $! > {pid_file}\nwait\n"
    )
    shop_app.config["SELF_BILLING_PDF_TIMEOUT"] = 1
    response = download(customer)
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "pdf_timeout"
    assert "try again" in error["message"]
    assert response.headers["Retry-After"] == "30"
    assert cache_files(shop_app) == []
    # the whole process group was killed, the script's own children included
    pid = int(pid_file.read_text())
    for _ in range(50):
        if _process_gone(pid):
            break
        time.sleep(0.05)
    assert _process_gone(pid)


@pytest.mark.parametrize(
    "body",
    [
        "echo 'Segmentation fault' >&2\nexit 139\n",
        # a PDF cut short, with a clean exit: still not served
        "printf '%PDF-1.4\\n1 0 obj' > \"$(eval echo \\${$#})\"\nexit 0\n",
    ],
    ids=["crash", "truncated"],
)
def test_crashing_wkhtmltopdf_is_503_and_caches_nothing(shop_app, customer, tmp_path, caplog, body):
    shop_app.config["SELF_BILLING_WKHTMLTOPDF"] = write_script(tmp_path / "crash.sh", body)
    with caplog.at_level("ERROR", logger="plugin.invoices.render"):
        response = download(customer)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "pdf_failed"
    assert "try again" in response.get_json()["error"]["message"]
    assert cache_files(shop_app) == []
    assert "crash.sh" in caplog.text


# -- cache -----------------------------------------------------------------------------------


def test_repeat_download_is_served_from_the_cache(shop_app, customer, tmp_path):
    first = download(customer)
    assert first.status_code == 200
    files = cache_files(shop_app)
    assert len(files) == 1 and re.fullmatch(r"[0-9a-f]{64}\.pdf", files[0])

    # with no renderer at all, the same invoice still downloads, byte for byte
    shop_app.config["SELF_BILLING_WKHTMLTOPDF"] = str(tmp_path / "gone")
    again = download(customer)
    assert again.status_code == 200
    assert again.data == first.data
    assert agent_download(shop_app, "pay_1").data == first.data
    # ...but a new invoice cannot be made
    assert agent_download(shop_app, "pay_2").status_code == 503


def test_new_merchant_settings_reach_new_invoices_and_an_emptied_cache_is_rebuilt(shop_app, shop, customer):
    first = download(customer)
    shop_app.config["SELF_BILLING_MERCHANT_NAME"] = "Acme Tools Group plc"
    assert download(customer).data == first.data  # issued: it names the seller as it was
    shop.payment("ORD-1", "pay_1n", "2026-11-01T10:00:00Z")
    assert "Acme Tools Group plc" in pdf_text(download(customer, "pay_1n").data)

    for name in cache_files(shop_app):
        (Path(shop_app.config["SELF_BILLING_INVOICE_CACHE_DIR"]) / name).unlink()
    again = download(customer)
    assert again.status_code == 200
    assert pdf_text(again.data) == pdf_text(first.data)
    assert len(cache_files(shop_app)) == 1


def test_repeat_download_with_the_etag_is_not_modified(customer):
    first = download(customer)
    etag = first.headers["ETag"]
    second = customer.get(f"{PREFIX}/portal/payments/pay_1/invoice.pdf", headers={"If-None-Match": etag})
    assert second.status_code == 304
    assert second.data == b""


def test_concurrent_downloads_render_once(shop_app, shop, tmp_path):
    count_file = tmp_path / "runs"
    shop_app.config["SELF_BILLING_WKHTMLTOPDF"] = write_script(
        tmp_path / "counting-wkhtmltopdf",
        f'echo run >> {count_file}\nsleep 0.5\nexec {WKHTMLTOPDF} "$@"\n',
    )
    clients = [shop_app.test_client() for _ in range(2)]
    for client in clients:
        login(client, shop_app)
    barrier = threading.Barrier(len(clients))
    results: list = [None] * len(clients)

    def fetch(i: int) -> None:
        barrier.wait()
        response = download(clients[i])
        results[i] = (response.status_code, response.data)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [200, 200]
    assert results[0][1] == results[1][1]
    assert count_file.read_text().split() == ["run"]
    assert len(cache_files(shop_app)) == 1


RENDER_IN_A_PROCESS = """
import sys
from flask import Flask
from plugin.invoices.cache import pdf_for_html

app = Flask("worker")
app.config.update(SELF_BILLING_INVOICE_CACHE_DIR=sys.argv[1], SELF_BILLING_WKHTMLTOPDF=sys.argv[2],
                  SELF_BILLING_PDF_TIMEOUT=30)
with app.app_context():
    print(pdf_for_html("<html><body><p>one invoice, two app servers</p></body></html>").name)
"""


def test_two_processes_rendering_the_same_invoice_run_wkhtmltopdf_once(tmp_path):
    """Two app server processes sharing the cache folder: the file lock makes the second wait and reuse."""
    import subprocess
    import sys

    count_file = tmp_path / "runs"
    wrapper = write_script(tmp_path / "counting-wkhtmltopdf",
                           f'echo run >> {count_file}\nsleep 1\nexec {WKHTMLTOPDF} "$@"\n')
    folder = tmp_path / "shared-cache"
    root = str(Path(__file__).resolve().parent.parent)
    procs = [
        subprocess.Popen([sys.executable, "-c", RENDER_IN_A_PROCESS, str(folder), wrapper], cwd=root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    names = {out.strip() for out, _err in outputs}
    assert len(names) == 1 and names.pop().endswith(".pdf")
    assert count_file.read_text().split() == ["run"]
    assert sorted(name for name in os.listdir(folder) if name != ".render-slots") == [outputs[0][0].strip()]


def test_host_can_override_the_invoice_template(shop_app, customer, tmp_path):
    folder = tmp_path / "host_templates" / "self_billing" / "invoice"
    folder.mkdir(parents=True)
    (folder / "invoice.html").write_text(
        "<html><body><p>HOST INVOICE {{ invoice_number }} for order {{ order_id }}</p>"
        "<p>{{ bill_to.name }}</p></body></html>"
    )
    shop_app.template_folder = str(tmp_path / "host_templates")
    text = pdf_text(download(customer).data)
    assert f"HOST INVOICE INV-{TODAY.year}-000001 for order ORD-1" in text
    assert "Ann Lee" in text
