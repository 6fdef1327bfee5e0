"""The query endpoint: JSON answers, 400 for bad input, the report, and mounting on Faust."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from infra.broker import free_port
from schemas.settings import Settings
from sinks.serve import QueryServer, add_faust_routes
from sinks.store import Store
from sinks.writer import Writer
from tests.sinks import dataset


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_query_endpoint(store: Store) -> None:
    import asyncio

    dataset.load(Writer(store))
    server = QueryServer(store, free_port())
    await server.start()
    try:
        get = lambda path: asyncio.to_thread(_get, server.url + path)  # noqa: E731
        status, body = await get(
            "/query/top-emitters?from_date=2026-01-01&to_date=2026-02-28&limit=1"
        )
        assert status == 200
        assert json.loads(body)["sections"] == [
            {
                "section": "top",
                "columns": ["rank", "account_id", "name", "area", "industry_code", "tco2e"],
                "rows": [[1, "E2", "Beta Cement", "industry", "3011", 8.0]],
            }
        ]
        status, body = await get("/query/top-emitters?from_date=2026-01-01")
        assert status == 400 and "missing parameter to_date" in json.loads(body)["error"]
        status, body = await get("/query/nope")
        assert status == 400 and "unknown query" in json.loads(body)["error"]
        status, body = await get(
            f"/report/E1?format=html&as_of={dataset.AS_OF.replace('+', '%2B')}"
        )
        assert status == 200 and body.count(b"<svg") == 2
        status, body = await get("/queries")
        assert status == 200 and "loan-eligibility" in json.loads(body)
    finally:
        await server.stop()


def test_routes_mount_on_a_faust_app(store: Store, bootstrap: str) -> None:
    from streams.app import create_app

    app = create_app(Settings(), bootstrap, agents=[], web=True)
    add_faust_routes(app, store, "Asia/Shanghai")
    paths = {r.resource.canonical for r in app.web.web_app.router.routes() if r.resource}
    assert {"/queries", "/query/{name}", "/report/{account_id}"} <= paths
