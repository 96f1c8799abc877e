"""The digests stored for portal sessions, login links and idempotency keys never change.

Rows already in a database hold these digests: a change of the hashing would log every customer out,
void every emailed link and replay nothing. The expected values were computed by the three hashers
the plugin had before they became :mod:`plugin.tokens`.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from plugin.db import db, utcnow
from plugin.ledger.models import Purchase
from plugin.portal.login_links import LoginLink, use_login_link
from plugin.portal.models import PortalSession
from plugin.tokens import digest, digest_parts, new_token


def test_digests_are_the_ones_rows_already_hold():
    assert digest("session-token-Ab_9") == "6cb6d8261deee15b5d2afb50760742f07c94fa51fe8059051a9c49d099c8159c"
    assert digest("link-token-é") == "a628d8b77d7d228f4f00522a1e03ff090df7f79804c5468c6114040d3357f8c0"
    assert digest_parts(b"lead:1", b"key-1") == "348e64ee529fb4949ea5158236e8841ee7104ed6a6468dccd9eeeb8a26883c36"
    assert digest_parts(b"") == "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc"
    assert digest_parts(b"ab", b"c") != digest_parts(b"a", b"bc")


def test_new_tokens_are_long_url_safe_and_fresh():
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    assert all(len(t) == 43 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


def test_a_session_row_and_a_link_row_are_found_by_the_digest_of_their_token(app, ledger):
    ledger.settings(enabled=True)
    ledger.price()
    ledger.order("ORD-1001")
    client = app.test_client()
    login = client.post("/billing/api/portal/login", json={"order_id": "ORD-1001", "email": "ann@example.com"})
    assert login.status_code == 200, login.get_data(as_text=True)
    with client.session_transaction() as cookie:
        token = cookie["self_billing_session"]
    with app.app_context():
        assert db.session.get(PortalSession, digest(token)) is not None
        # a link stored by an earlier version (only its digest is kept) still logs in, once
        lead_id, purchase_id = db.session.execute(select(Purchase.lead_id, Purchase.id)).one()
        now = utcnow()
        db.session.add(LoginLink(token_hash=digest("emailed-link-token"), lead_id=lead_id, purchase_id=purchase_id,
                                 created_at=now, expires_at=now + timedelta(minutes=15)))
        db.session.commit()
        assert use_login_link("emailed-link-token").id == lead_id
        assert use_login_link("emailed-link-token") is None
