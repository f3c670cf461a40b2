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
