import pytest

from tests.factories import make_business


class Api:
    """The test client with a business's API key."""

    def __init__(self, client, key):
        self.client, self.key = client, key

    def _headers(self, headers):
        return {"Authorization": f"Bearer {self.key}", **(headers or {})}

    async def call(self, method, path, json=None, *, data=None, headers=None):
        kwargs = {"json": json} if json is not None else ({"data": data} if data is not None else {})
        resp = await self.client.request(method, "/api/v1" + path, headers=self._headers(headers), **kwargs)
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body

    async def put(self, path, json=None, **kw):
        return await self.call("PUT", path, json, **kw)

    async def post(self, path, json=None, **kw):
        return await self.call("POST", path, json, **kw)

    async def get(self, path, **kw):
        return await self.call("GET", path, **kw)


@pytest.fixture
def biz(db):
    business = make_business(db)
    db.commit()
    return business


@pytest.fixture
def api(client, biz):
    return Api(client, biz.api_key)


def pytest_collection_modifyitems(items):
    # Schemathesis (4.32) names each operation's test "test_api_fuzz[GET /api/v1/settings]", but pytest 9.2
    # builds node ids from the plain function name, so every operation would report as the same test.
    for item in items:
        label = getattr(item, "operation_label", None)
        if label and hasattr(item, "_id") and item.nodeid.endswith("::" + item.originalname):
            item._id = item._id.with_params(label)
