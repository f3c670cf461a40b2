"""The OpenAPI document stays true to the code: same routes, resolvable
references, and every documented example is accepted by the running app
with a documented status and a body of the documented shape."""

import re

import pytest

from portal import api_schemas
from portal_web.api.base import PREFIX
from tests.fakes.dns import PUBLIC, resolve_as


def _app_routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith(PREFIX) and route.method != "HEAD":
            found.add((route.method.lower(), path))
    return found


@pytest.fixture
async def doc(client):
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    return await resp.json()


async def test_every_api_route_is_documented_and_vice_versa(client, doc):
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == _app_routes(client.app)


async def test_every_reference_resolves(doc):
    text = str(doc)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in doc["components"]["schemas"], name
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["responses"] and op["operationId"]


def _model(ref: str):
    return getattr(api_schemas, ref.rsplit("/", 1)[1])


# Examples run in this order, so each finds what it refers to.
ORDER = ["/customers/{external_id}", "/service-providers/{external_id}", "/services/{external_id}",
         "/bookings/{external_id}", "/bookings/{external_id}/cancel", "/invoices/{external_id}",
         "/quotes/{external_id}", "/invitations", "/settings"]


def _example_requests(doc):
    """(method, path, body, operation) for every operation whose body schema has an example."""
    ops = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if "requestBody" not in op:
                continue
            schema = doc["components"]["schemas"][_model(op["requestBody"]["content"]["application/json"]
                                                         ["schema"]["$ref"]).__name__]
            rank = ORDER.index(path[len(PREFIX):]) if path[len(PREFIX):] in ORDER else len(ORDER)
            ops.extend((rank, method, path, example, op) for example in schema.get("examples", []))
    return [item[1:] for item in sorted(ops, key=lambda item: item[0])]


async def test_examples_validate_against_the_request_models(doc):
    examples = _example_requests(doc)
    assert len(examples) >= 9
    for _method, _path, example, op in examples:
        model = _model(op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
        model.model_validate(example, context={"region": "CA"})


async def test_examples_run_against_the_app(api, doc, monkeypatch):
    resolve_as(monkeypatch, {"booking.example.com": [PUBLIC]})  # the settings example's webhook host
    ids = {"/customers/": "cust-1001", "/service-providers/": "prov-1", "/services/": "svc-1", "/bookings/": "bk-1",
           "/invoices/": "inv-1", "/quotes/": "q-1"}
    for method, path, example, op in _example_requests(doc):
        concrete = path
        for prefix, value in ids.items():
            if path.startswith(PREFIX + prefix):
                concrete = path.replace("{external_id}", value)
        status, body = await api.call(method.upper(), concrete[len(PREFIX):], example)
        assert str(status) in op["responses"], (path, status, body)
        assert 200 <= status < 300, (path, status, body)
        response_ref = op["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
        _model(response_ref).model_validate(body)


async def test_get_operations_answer_with_documented_shapes(api, doc):
    await api.put("/customers/c1", {"name": "Jane", "email": "jane@example.com"})
    for path in ("/customers/c1", "/settings", "/messages?customer=c1"):
        status, body = await api.get(path)
        template = next(p for p in doc["paths"] if re.fullmatch(
            re.sub(r"\{\w+\}", "[^/]+", p), PREFIX + path.split("?")[0]))
        ref = doc["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        _model(ref).model_validate(body)
