"""The gateway's admin API: read the suppression list kept by the suppression sink.

``GET /api/suppressions/{email}`` (200 with the entry, 404 when the address is not suppressed) and
``GET /api/suppressions?since=<ISO 8601>&limit=N[&format=csv]``. Both need
``Authorization: Bearer <gateway.admin_token>`` (compared in constant time); without a configured
token the API refuses everything. The database is the first ``[[sinks]]`` entry of type suppression;
its pool opens no connection at start-up (``min_size=0``), so a PostgreSQL that is down never stops
the gateway from taking webhooks: the admin API answers 503 until it is back.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from espwire.config import Settings
from ingest_gateway.dispatch import Dispatcher
from sinks.postgres import PG_UNAVAILABLE, parse_instant
from sinks.privacy import Redactor
from sinks.suppression import SuppressionOptions, SuppressionStore, suppressions_csv

log = logging.getLogger("espwire.gateway.admin")

Answer = Callable[[SuppressionStore], Awaitable[web.StreamResponse]]


class SuppressionApi:
    """The suppression routes; ``start`` opens the pool before the gateway listens, ``close`` after it stops."""

    def __init__(self, settings: Settings) -> None:
        config = next((s for s in settings.sinks if s.type == "suppression"), None)
        self._options = SuppressionOptions.from_config(config) if config is not None else None
        admin_token = settings.gateway.admin_token
        self._token = admin_token.get_secret_value().encode() if admin_token is not None else None
        self._pool: Any = None
        self._store: SuppressionStore | None = None

    def add_routes(self, dispatcher: Dispatcher) -> None:
        dispatcher.add_segment("/api/suppressions", self.get_one)
        dispatcher.add_get("/api/suppressions", self.list_all)

    async def start(self) -> None:
        if self._options is None:
            return
        import asyncpg  # type: ignore[import-untyped]

        options = self._options
        self._pool = await asyncpg.create_pool(
            options.dsn.get_secret_value(),
            min_size=0,
            max_size=2,
            timeout=5,
            command_timeout=10,
        )
        self._store = SuppressionStore(self._pool, options.schema_, Redactor(options.privacy))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._store = None

    async def get_one(self, request: web.BaseRequest, email: str) -> web.StreamResponse:
        async def answer(store: SuppressionStore) -> web.StreamResponse:
            entry = await store.get_suppression(email)
            if entry is None:
                return web.json_response({"error": "not suppressed"}, status=404)
            return web.json_response(_jsonable(entry))

        return await self._guarded(request, answer)

    async def list_all(self, request: web.BaseRequest) -> web.StreamResponse:
        return await self._guarded(request, lambda store: _list(store, request.query))

    async def _guarded(self, request: web.BaseRequest, answer: Answer) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if (
            self._token is None
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(presented.strip().encode(), self._token)
        ):
            return web.json_response(
                {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": 'Bearer realm="espwire-admin"'}
            )
        if self._store is None:
            return web.json_response({"error": "no [[sinks]] entry of type suppression is configured"}, status=404)
        try:
            return await answer(self._store)
        except PG_UNAVAILABLE as exc:
            log.warning("suppression database unavailable", extra={"error": repr(exc)[:300]})
            return web.json_response({"error": "database unavailable"}, status=503, headers={"Retry-After": "5"})


async def _list(store: SuppressionStore, query: Mapping[str, str]) -> web.StreamResponse:
    since_text = query.get("since")
    since = parse_instant(since_text) if since_text else None
    if since_text and since is None:
        return web.json_response({"error": "since must be an ISO 8601 time"}, status=400)
    try:
        limit = min(int(query.get("limit", "10000")), 100_000)
    except ValueError:
        return web.json_response({"error": "limit must be an integer"}, status=400)
    rows = await store.list_suppressions(since, limit)
    if query.get("format") == "csv":
        return web.Response(text=suppressions_csv(rows), content_type="text/csv")
    return web.json_response({"suppressions": [_jsonable(row) for row in rows]})


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
