"""The OpenAPI 3.1 document, built from the route table and the same pydantic
models that validate requests and shape responses."""

from __future__ import annotations

import re

from pydantic.json_schema import models_json_schema

from portal.api_schemas import EXTERNAL_ID_PATTERN, ErrorOut
from portal_web.api.base import IDEMPOTENCY_HEADER, PREFIX, Route

REF = "#/components/schemas/{model}"
ID = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": EXTERNAL_ID_PATTERN}  # the booking system's ids
ERRORS = {401: "Missing or invalid API key", 404: "Not found", 409: "Conflicts with the current state",
          422: "Invalid request: malformed JSON, unknown fields, field errors, or a reused Idempotency-Key"}


def _ref(model) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def operation_id(route: Route) -> str:
    return route.method.lower() + "_" + re.sub(r"[^a-z0-9]+", "_", route.path.lower()).strip("_")


def build(routes: list[Route]) -> dict:
    modes = {ErrorOut: "serialization"}
    for route in routes:
        if route.body is not None:
            modes[route.body] = "validation"
        if route.response is not None:
            modes.setdefault(route.response, "serialization")
    ordered = sorted(modes.items(), key=lambda item: item[0].__name__)
    _, schemas = models_json_schema(ordered, ref_template=REF)
    paths: dict[str, dict] = {}
    for route in routes:
        op: dict = {"summary": route.summary, "operationId": operation_id(route),
                    "tags": [route.tag], "parameters": [], "responses": {}}
        for name in re.findall(r"{(\w+)}", route.path):
            op["parameters"].append({"name": name, "in": "path", "required": True, "schema": dict(ID)})
        for name, description in route.query.items():
            op["parameters"].append({"name": name, "in": "query", "required": False, "description": description,
                                     "schema": {"type": "integer"} if name == "limit" else dict(ID)})
        if route.method == "POST" and route.replays:
            op["parameters"].append({
                "name": IDEMPOTENCY_HEADER, "in": "header", "required": False, "schema": {"type": "string",
                                                                                         "maxLength": 200},
                "description": "The same key and body replay the first response; another body gets 422. "
                               "Keys are remembered for IDEMPOTENCY_KEY_TTL (24 hours by default)"})
        if route.body is not None:
            op["requestBody"] = {"required": route.method == "PUT",
                                 "content": {"application/json": {"schema": _ref(route.body)}}}
        for status in route.statuses:
            response = {"description": {200: "OK", 201: "Created", 202: "Accepted"}.get(status, "OK")}
            if route.response is not None:
                response["content"] = {"application/json": {"schema": _ref(route.response)}}
            op["responses"][str(status)] = response
        if route.public:
            op["security"] = []
        else:
            for status, description in ERRORS.items():
                op["responses"][str(status)] = {"description": description,
                                                "content": {"application/json": {"schema": _ref(ErrorOut)}}}
        if not op["parameters"]:
            del op["parameters"]
        paths.setdefault(PREFIX + route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Customer Portal booking-system API", "version": "1.0.0",
                 "description": "Keeps the portal's picture of customers, bookings, invoices and quotes current. "
                                "Authenticate with `Authorization: Bearer <API key>`; each key reaches its own "
                                "business only. PUTs are idempotent upserts keyed by the booking system's ids."},
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {}),
                       "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}}},
    }
