"""The query catalogue over HTTP, served by the process that owns the embedded store.

Only one process can open an embedded (chdb) store. While `demo`, `sink` or a worker
owns it, `carbon-accounts query` and `report` from another terminal ask this endpoint
instead (on 127.0.0.1, port `streams.web_port`):

- `GET /queries`: the catalogue (names, descriptions, parameters);
- `GET /query/{name}?k=v...`: `{"sections": [{"section", "columns", "rows"}]}`;
- `GET /report/{account_id}?format=json|html&as_of=...`: the carbon credit report.

Errors: 400 with `{"error": ...}` for an unknown query or a bad parameter, 500 otherwise.
`add_routes` mounts the same routes on any aiohttp application (e.g. Faust's web).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from sinks.catalogue import CatalogueError, catalogue, run_query
from sinks.report import jsonable, render_html, report_data
from sinks.store import Store

__all__ = ["QueryServer", "add_faust_routes", "add_routes", "credit_report"]

log = logging.getLogger(__name__)


def credit_report(
    store: Store, account_id: str, params: dict[str, str], timezone: str
) -> dict[str, Any]:
    """The report data of one account (blocking)."""
    sections = run_query(
        store, "credit-report", {**params, "account_id": account_id}, timezone=timezone
    )
    return report_data(sections)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=jsonable, ensure_ascii=False),
        status=status,
        content_type="application/json",
    )


def add_routes(app: web.Application, store: Store, timezone: str) -> None:
    """Mount the catalogue routes on an aiohttp application."""

    async def queries(_request: web.Request) -> web.Response:
        return _json(
            {
                name: {
                    "description": q.description,
                    "params": {
                        p.name: {"type": p.type, "default": p.default, "doc": p.doc}
                        for p in q.params.values()
                    },
                }
                for name, q in catalogue().items()
            }
        )

    async def query(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            sections = await asyncio.to_thread(
                run_query, store, name, dict(request.query), timezone=timezone
            )
        except CatalogueError as exc:
            return _json({"error": str(exc)}, 400)
        except Exception as exc:
            log.exception("query %s failed", name)
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 500)
        return _json(
            {
                "sections": [
                    {
                        "section": s.section,
                        "columns": s.columns,
                        "rows": [[jsonable(v) for v in row] for row in s.rows],
                    }
                    for s in sections
                ]
            }
        )

    async def report(request: web.Request) -> web.Response:
        params = dict(request.query)
        fmt = params.pop("format", "json")
        try:
            data = await asyncio.to_thread(
                credit_report, store, request.match_info["account_id"], params, timezone
            )
        except CatalogueError as exc:
            return _json({"error": str(exc)}, 400)
        except Exception as exc:
            log.exception("report failed")
            return _json({"error": f"{type(exc).__name__}: {exc}"}, 500)
        if fmt == "html":
            return web.Response(
                text=render_html(data, as_of=params.get("as_of", "")), content_type="text/html"
            )
        return _json(data)

    app.router.add_get("/queries", queries)
    app.router.add_get("/query/{name}", query)
    app.router.add_get("/report/{account_id}", report)


def add_faust_routes(faust_app: Any, store: Store, timezone: str) -> None:
    """Mount the catalogue routes on a Faust app's web server (aiohttp driver).

    Call before the worker starts (aiohttp freezes its router then); the worker must run
    with its web server enabled (`create_app(..., web=True)`) on `streams.web_port`.
    """
    add_routes(faust_app.web.web_app, store, timezone)


class QueryServer:
    """A small aiohttp server with the catalogue routes, on 127.0.0.1."""

    def __init__(
        self, store: Store, port: int, *, timezone: str = "Asia/Shanghai", host: str = "127.0.0.1"
    ) -> None:
        self.store = store
        self.port = port
        self.host = host
        self.timezone = timezone
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Start serving (raises OSError if the port is taken)."""
        app = web.Application()
        add_routes(app, self.store, self.timezone)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise

    @property
    def url(self) -> str:
        """Where it serves."""
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
