"""``docs/openapi.yaml`` stays true: every JSON route the plugin registers is documented with its
methods, nothing documented is missing from the app, and every reference and path parameter resolves."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is a test dependency: pip install -e '.[test]'")

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch"}
PREFIX = "/billing"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


def flask_to_openapi(rule: str) -> str:
    """``/purchases/<order_id>/x/<int:ticket_id>`` -> ``/purchases/{order_id}/x/{ticket_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def json_route(path: str) -> bool:
    return path.startswith(("/api/", "/sandbox/")) or path == "/healthz"


def app_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        path = flask_to_openapi(rule.rule[len(PREFIX):])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((path, method.lower()))
    return found


def documented_operations(spec) -> set[tuple[str, str]]:
    return {(path, method) for path, item in spec["paths"].items() for method in item if method in METHODS}


def test_it_is_openapi_3_with_a_server_at_the_default_prefix(spec):
    assert str(spec["openapi"]).startswith("3.")
    assert spec["info"]["title"] and spec["info"]["version"]
    assert spec["servers"][0]["url"] == PREFIX


def test_every_json_route_of_the_app_is_documented_with_its_methods(app, spec):
    routes = {(path, method) for path, method in app_operations(app) if json_route(path)}
    assert routes, "the app registers JSON routes"
    missing = sorted(routes - documented_operations(spec))
    assert missing == [], f"registered but not in docs/openapi.yaml: {missing}"


def test_nothing_documented_is_missing_from_the_app(app, spec):
    extra = sorted(documented_operations(spec) - app_operations(app))
    assert extra == [], f"in docs/openapi.yaml but not registered: {extra}"


def test_the_contracts_portal_routes_are_there(spec):
    portal = {
        ("/api/portal/login", "post"), ("/api/portal/logout", "post"), ("/api/portal/purchases", "get"),
        ("/api/portal/purchases/{order_id}/cancel", "post"), ("/api/portal/payments/{payment_id}/refund", "post"),
        ("/api/portal/purchases/{order_id}/billing-address", "put"),
        ("/api/portal/purchases/{order_id}/payment-methods", "get"),
        ("/api/portal/purchases/{order_id}/payment-methods", "post"),
        ("/api/portal/purchases/{order_id}/payment-methods/{method_id}/default", "post"),
        ("/api/portal/purchases/{order_id}/payment-methods/{method_id}", "delete"),
        ("/portal/payments/{payment_id}/invoice.pdf", "get"),
    }
    assert portal <= documented_operations(spec)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_reference_resolves(spec):
    refs = set(_refs(spec))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = spec
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"unresolved {ref}"
            node = node[part]


def _resolve(spec, node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = _walk(spec, node["$ref"])
    return node


def _walk(spec, ref: str) -> Any:
    node = spec
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_path_parameters_are_declared_and_every_operation_answers(spec):
    for path, item in spec["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        shared = [_resolve(spec, p) for p in item.get("parameters", [])]
        for method, operation in item.items():
            if method not in METHODS:
                continue
            declared = {p["name"] for p in shared + [_resolve(spec, p) for p in operation.get("parameters", [])]
                        if p["in"] == "path"}
            assert declared == names, f"{method.upper()} {path}: path parameters {declared} != {names}"
            assert operation.get("responses"), f"{method.upper()} {path} documents no response"
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            for status in operation["responses"]:
                assert re.fullmatch(r"[1-5]\d\d", str(status)), f"{method.upper()} {path}: status {status}"


def test_portal_state_changes_document_the_csrf_header(spec):
    for path, item in spec["paths"].items():
        if not path.startswith("/api/portal/") or path in ("/api/portal/login", "/api/portal/login-link",
                                                                 "/api/portal/order-lookup"):
            continue
        for method, operation in item.items():
            if method in {"post", "put", "delete"}:
                schemes = {name for requirement in operation["security"] for name in requirement}
                assert "csrfHeader" in schemes, f"{method.upper()} {path} does not say it needs X-CSRFToken"
