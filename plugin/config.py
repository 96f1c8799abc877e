"""Configuration keys of Self-Billing with their defaults.

``SelfBilling.init_app`` applies each default with ``app.config.setdefault``;
the README documents every key.
"""
from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Where the plugin's pages and APIs are mounted.
    "SELF_BILLING_URL_PREFIX": "/billing",
    # Bearer token of the merchant API; None turns the merchant API off.
    "SELF_BILLING_ADMIN_TOKEN": None,
    # Failed portal logins allowed per email, and per client address (Flask-Limiter strings).
    "SELF_BILLING_LOGIN_LIMIT_PER_EMAIL": "5 per 15 minutes",
    "SELF_BILLING_LOGIN_LIMIT_PER_ADDRESS": "100 per 15 minutes",
    # Where the login limits count: "self-billing-db://" is the app's own database, shared by every
    # worker and machine (plugin/limit_storage.py); "redis://host:6379" works too; "memory://"
    # counts per process (one process only: four workers would allow four times the limit).
    "SELF_BILLING_RATELIMIT_STORAGE_URI": "self-billing-db://",
    # Minutes of inactivity after which a portal session ends.
    "SELF_BILLING_SESSION_IDLE_MINUTES": 30,
    # A one-time login link (asked for on the login page, emailed) works once within this many minutes.
    "SELF_BILLING_LOGIN_LINK_MINUTES": 15,
    # Login links that may be asked for per email, and per client address (Flask-Limiter strings).
    "SELF_BILLING_LOGIN_LINK_LIMIT_PER_EMAIL": "3 per hour",
    "SELF_BILLING_LOGIN_LINK_LIMIT_PER_ADDRESS": "30 per hour",
    # "Forgot your Order ID?" lookups (order_lookup emails) per email, and per client address.
    "SELF_BILLING_ORDER_LOOKUP_LIMIT_PER_EMAIL": "3 per hour",
    "SELF_BILLING_ORDER_LOOKUP_LIMIT_PER_ADDRESS": "30 per hour",
    # Hours during which a repeated Idempotency-Key replays the first answer (plugin/api/idempotency.py).
    "SELF_BILLING_IDEMPOTENCY_HOURS": 24,
    # Hours after the login at which a portal session ends, however active it is.
    "SELF_BILLING_SESSION_MAX_HOURS": 12,
    # Opt in to app-wide session-cookie defaults the host has not chosen: SameSite=Lax when unset, and
    # the cookie marked Secure on requests that came over https (docs/portal.md). They change the
    # host's own cookie, so they are off unless asked for: False leaves the host's settings as they are.
    "SELF_BILLING_SESSION_COOKIE_DEFAULTS": False,
    # Payments per page of a purchase's history in My Orders (HTML and JSON): each purchase shows its
    # latest page, "Show details" the older ones a page at a time (plugin/payment_history.py; 1 to 100).
    "SELF_BILLING_PAYMENTS_PAGE_SIZE": 5,
    # Purchases per page of My Orders (the HTML pages only: the portal JSON API gives every purchase): the
    # latest page first, "Show earlier purchases" the older ones a page at a time (plugin/portal/purchase_pages.py;
    # 1 to 100).
    "SELF_BILLING_PURCHASES_PAGE_SIZE": 10,
    # Where the card form posts card details to get a processor token; None = the sandbox's
    # {prefix}/sandbox/tokens. A real processor's tokenization endpoint goes here.
    "SELF_BILLING_CARD_TOKEN_URL": None,
    # The payment processor: "sandbox", "stripe" (docs/stripe.md) or "package.module:factory" returning a
    # PaymentGateway.
    "SELF_BILLING_GATEWAY": "sandbox",
    # Stripe (SELF_BILLING_GATEWAY = "stripe", docs/stripe.md). The secret key (sk_live_... or sk_test_...)
    # the server calls Stripe with, and the publishable key (pk_...) the card page gives Stripe.js.
    "SELF_BILLING_STRIPE_SECRET_KEY": None,
    "SELF_BILLING_STRIPE_PUBLISHABLE_KEY": None,
    # The signing secret (whsec_...) of the webhook endpoint {prefix}/webhooks/stripe; None = the
    # endpoint refuses every event (404), so nothing unsigned is ever applied.
    "SELF_BILLING_STRIPE_WEBHOOK_SECRET": None,
    # Where the Stripe API is; None = Stripe's own (https://api.stripe.com). Tests point it at localstripe.
    "SELF_BILLING_STRIPE_API_BASE": None,
    # Where the card page loads Stripe.js from (tests: localstripe's fake, {api base}/js.stripe.com/v3/).
    "SELF_BILLING_STRIPE_JS_URL": "https://js.stripe.com/v3/",
    # Seconds one call to Stripe may take (then: processor unavailable, retried later with the same key),
    # and how many times the library itself retries a failed connection (with the same idempotency key).
    "SELF_BILLING_STRIPE_TIMEOUT_SECONDS": 20,
    "SELF_BILLING_STRIPE_MAX_NETWORK_RETRIES": 1,
    # Seconds a signed webhook's timestamp may be old (Stripe's library default: 300).
    "SELF_BILLING_STRIPE_WEBHOOK_TOLERANCE_SECONDS": 300,
    # Price points made for Stripe plans and prices the ledger does not know yet (existing ones are left
    # as the merchant set them): how cancellations end, and the refund window in days.
    "SELF_BILLING_STRIPE_CANCELLATION": "delayed",
    "SELF_BILLING_STRIPE_REFUND_WINDOW_DAYS": 30,
    # Country of the bill-to address of a Stripe customer who has none (the ledger needs one).
    "SELF_BILLING_STRIPE_DEFAULT_COUNTRY": "US",
    # Largest JSON body the APIs accept, in bytes (larger: 413).
    "SELF_BILLING_MAX_BODY_BYTES": 64 * 1024,
    # Seconds after which ``tick`` retries a processor step left pending (a crash, a lost answer).
    "SELF_BILLING_RESUME_AFTER_SECONDS": 300,
    # Locale used by Babel for amounts and dates shown to people.
    "SELF_BILLING_LOCALE": "en_US",
    # Invoice PDFs (plugin/invoices). The wkhtmltopdf binary: a path or a name looked up on PATH;
    # None looks up "wkhtmltopdf" on PATH.
    "SELF_BILLING_WKHTMLTOPDF": None,
    # Seconds one PDF render may take before it is killed (the download answers 503, retry later).
    "SELF_BILLING_PDF_TIMEOUT": 20,
    # wkhtmltopdf renders at once per cache folder (all workers together); None = the machine's cores.
    # A render that finds them all busy waits up to QUEUE_SECONDS, then answers 503 with Retry-After.
    "SELF_BILLING_PDF_CONCURRENCY": None,
    "SELF_BILLING_PDF_QUEUE_SECONDS": 10,
    # The invoice cache's size bound in MB (least recently used files go first; None or 0: unbounded).
    "SELF_BILLING_INVOICE_CACHE_MAX_MB": 500,
    # Folder of rendered invoices, named by content hash; None = "self_billing_invoices" in the
    # instance folder. Share it between app servers on one machine; safe to empty at any time.
    "SELF_BILLING_INVOICE_CACHE_DIR": None,
    # The merchant's block on every invoice. ADDRESS may hold several lines (newlines or a list);
    # LOGO_PATH is an image file read at render time and embedded (a missing file is logged and skipped).
    "SELF_BILLING_MERCHANT_NAME": "",
    "SELF_BILLING_MERCHANT_ADDRESS": "",
    "SELF_BILLING_MERCHANT_TAX_ID": "",
    "SELF_BILLING_MERCHANT_LOGO_PATH": None,
    "SELF_BILLING_MERCHANT_EMAIL": "",
    # The seller's country (ISO 3166 alpha-2, e.g. "DE"): decides reverse charge for EU business customers.
    # The merchant settings API's "seller" profile wins over each of these MERCHANT keys.
    "SELF_BILLING_MERCHANT_COUNTRY": "",
    # Invoice and credit note numbers (plugin.invoices.numbering): {year} starts a new series each year.
    "SELF_BILLING_INVOICE_NUMBER_FORMAT": "INV-{year}-{seq:06d}",
    "SELF_BILLING_CREDIT_NOTE_NUMBER_FORMAT": "CN-{year}-{seq:06d}",
    # Where tickets of requests handled by hand go: "builtin" (the plugin's own store, which the
    # agent desk shows) or "package.module:factory" returning a HelpdeskAdapter (docs/helpdesk-adapter.md).
    "SELF_BILLING_HELPDESK_ADAPTER": "builtin",
    # Customer email (plugin/notifications). Sender address; None uses Flask-Mail's MAIL_DEFAULT_SENDER.
    "SELF_BILLING_MAIL_SENDER": None,
    # Reply-To of customer email (where a customer's reply goes); None uses the seller profile's contact email
    # (the settings API's seller.email, else SELF_BILLING_MERCHANT_EMAIL); with neither, no Reply-To header.
    "SELF_BILLING_MAIL_REPLY_TO": None,
    # A send that failed for a passing reason (server down, timeout, 4xx) is retried after BASE
    # seconds, then twice as long each time, at most MAX seconds apart, until it is delivered. Only
    # a permanent refusal (5xx, recipient refused) marks it failed: GET /api/admin/email-outbox?status=failed.
    "SELF_BILLING_MAIL_RETRY_BASE_SECONDS": 30,
    "SELF_BILLING_MAIL_RETRY_MAX_SECONDS": 1800,
    # Emails claimed and sent over one SMTP connection per round.
    "SELF_BILLING_MAIL_BATCH_SIZE": 50,
    # Seconds after which an email left "sending" by a worker that died is claimed again.
    "SELF_BILLING_MAIL_LEASE_SECONDS": 600,
    # Socket timeout of SMTP connections, in seconds (a stalled server cannot hang the worker).
    "SELF_BILLING_MAIL_TIMEOUT_SECONDS": 30,
    # Seconds the worker sleeps between rounds when nothing is due.
    "SELF_BILLING_WORKER_POLL_SECONDS": 5,
    # Small installs: also try each email right after its transaction commits (still through the
    # outbox: if the send fails it stays queued for the worker). Adds the SMTP time to that request.
    "SELF_BILLING_MAIL_SEND_AFTER_COMMIT": False,
    # Domain of the Message-IDs of customer email; None uses this machine's name.
    "SELF_BILLING_MAIL_MESSAGE_ID_DOMAIN": None,
    # Absolute URL of the billing portal shown at the bottom of customer email; None shows no link.
    "SELF_BILLING_EMAIL_PORTAL_URL": None,
}
