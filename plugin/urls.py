"""URLs the plugin puts in its answers, built by ``url_for`` so they carry the app's mount point.

Behind a proxy or under a sub-path (``SCRIPT_NAME=/support``), a link built by hand from
``SELF_BILLING_URL_PREFIX`` misses the sub-path; ``url_for`` does not. Without a request (the
in-process Python API, a worker) there is no mount point to know, and the prefix's path is used.
"""
from __future__ import annotations

from urllib.parse import quote

from flask import current_app, has_request_context, url_for

_PLACEHOLDER = "__self_billing_id__"


def payment_url_maker(endpoint: str, fallback_path: str, field: str = "payment_id"):
    """A function ``payment_id -> URL`` of ``endpoint`` (one ``url_for`` for any number of payments;
    ``field`` names the endpoint's argument, e.g. a credit note's ``number``).

    ``fallback_path`` is the endpoint's path under the prefix with ``{id}`` for the payment id, used
    outside a request.
    """
    if has_request_context():
        template = url_for(endpoint, **{field: _PLACEHOLDER})
    else:
        template = current_app.extensions["self_billing"].url_prefix + fallback_path.replace("{id}", _PLACEHOLDER)
    return lambda payment_id: template.replace(_PLACEHOLDER, quote(payment_id, safe=""))


def endpoint_url(endpoint: str, fallback_path: str) -> str:
    """The URL of a plugin endpoint without arguments (``fallback_path`` under the prefix outside a request)."""
    if has_request_context():
        return url_for(endpoint)
    return current_app.extensions["self_billing"].url_prefix + fallback_path
