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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from espwire.config import Settings
from sinks.postgres import PG_UNAVAILABLE, parse_instant
from sinks.privacy import Redactor
from sinks.suppression import SuppressionOptions, SuppressionStore, suppressions_csv

log = logging.getLogger("espwire.gateway.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _AdminState:
    options: SuppressionOptions | None
    store: SuppressionStore | None = None


STATE_KEY = web.AppKey("espwire_admin_suppressions", _AdminState)


def add_admin_routes(app: web.Application, settings: Settings) -> None:
    """Registers the suppression routes on ``app``; the pool opens with the app and closes with it."""
    config = next((s for s in settings.sinks if s.type == "suppression"), None)
    state = _AdminState(SuppressionOptions.from_config(config) if config is not None else None)
    app[STATE_KEY] = state
    token = settings.gateway.admin_token.get_secret_value().encode() if settings.gateway.admin_token else None

    async def pool_lifecycle(app: web.Application) -> AsyncIterator[None]:
        import asyncpg  # type: ignore[import-untyped]

        pool = None
        if state.options is not None:
            options = state.options
            pool = await asyncpg.create_pool(
                options.dsn.get_secret_value(),
                min_size=0,
                max_size=2,
                timeout=5,
                command_timeout=10,
            )
            state.store = SuppressionStore(pool, options.schema_, Redactor(options.privacy))
        yield
        if pool is not None:
            await pool.close()

    app.cleanup_ctx.append(pool_lifecycle)

    def protected(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            scheme, _, presented = header.partition(" ")
            if (
                token is None
                or scheme.lower() != "bearer"
                or not hmac.compare_digest(presented.strip().encode(), token)
            ):
                return web.json_response(
                    {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": 'Bearer realm="espwire-admin"'}
                )
            if state.store is None:
                return web.json_response({"error": "no [[sinks]] entry of type suppression is configured"}, status=404)
            try:
                return await handler(request)
            except PG_UNAVAILABLE as exc:
                log.warning("suppression database unavailable", extra={"error": repr(exc)[:300]})
                return web.json_response({"error": "database unavailable"}, status=503, headers={"Retry-After": "5"})

        return guarded

    async def get_one(request: web.Request) -> web.StreamResponse:
        assert state.store is not None
        entry = await state.store.get_suppression(request.match_info["email"])
        if entry is None:
            return web.json_response({"error": "not suppressed"}, status=404)
        return web.json_response(_jsonable(entry))

    async def list_all(request: web.Request) -> web.StreamResponse:
        assert state.store is not None
        since_text = request.query.get("since")
        since = parse_instant(since_text) if since_text else None
        if since_text and since is None:
            return web.json_response({"error": "since must be an ISO 8601 time"}, status=400)
        try:
            limit = min(int(request.query.get("limit", "10000")), 100_000)
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        rows = await state.store.list_suppressions(since, limit)
        if request.query.get("format") == "csv":
            return web.Response(text=suppressions_csv(rows), content_type="text/csv")
        return web.json_response({"suppressions": [_jsonable(row) for row in rows]})

    app.router.add_get("/api/suppressions/{email}", protected(get_one))
    app.router.add_get("/api/suppressions", protected(list_all))


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
