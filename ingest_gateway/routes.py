"""The webhook endpoint and the health routes.

The gateway judges who sends and how much, never what: an authenticated request within the limits
is kept exactly as received (Falconide never retries, so a refused POST is lost for good), and
the processors dead-letter what they cannot parse.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from espwire.clock import utc_now
from espwire.config import MAX_BODY_BYTES, Settings, SourceConfig
from espwire.envelope import Envelope, new_request_id
from ingest_gateway import auth, limits, metrics
from ingest_gateway.publisher import RawPublisher
from ingest_gateway.spool import SpoolFull
from ingest_gateway.whole_response import WholeResponse

log = logging.getLogger("espwire.gateway")

HOOK_METHODS = ("POST", "PUT", "GET", "HEAD")
# Request headers a processor may want; everything else (and every credential) stays behind.
MAX_KEPT_HEADER = 8192
_KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-messagesystems-batch-id",
    "x-forwarded-for",
    "x-request-id",
)
_RETRY_AFTER_SECONDS = "30"


def _json(status: int, body: Mapping[str, object], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


class HookHandler:
    def __init__(self, settings: Settings, publisher: RawPublisher) -> None:
        self.settings = settings
        self.publisher = publisher
        self.gateway = settings.gateway
        self._sources = {s.id: s for s in settings.sources}
        self._authenticators = {s.id: auth.Authenticator(s) for s in settings.sources}
        for source in settings.sources:
            if any(rule.type == "none" for rule in source.auth):
                where = "from its allow_ips" if source.allow_ips else "from anywhere"
                log.warning("source accepts requests without credentials", extra={"source": source.id, "from": where})
        # The request headers kept in each source's envelopes: never one that carries its secrets.
        self._kept_headers = {
            s.id: tuple(name for name in _KEPT_HEADERS if name not in auth.credential_header_names(s))
            for s in settings.sources
        }
        self.tally = metrics.RequestTally({s.id: s.provider for s in settings.sources})

    async def handle(self, request: web.BaseRequest, source_id: str) -> web.StreamResponse:
        """``/hooks/{source_id}``: every method reaches here, so an unknown source is 404 before a 405."""
        source = self._sources.get(source_id)
        if source is None:
            return _json(404, {"error": "unknown source"})
        tally = self.tally
        tally.in_flight += 1
        try:
            response = await self._handle_source(request, source)
        finally:
            tally.in_flight -= 1
        tally.answered(source.id, response.status)
        return response

    async def _handle_source(self, request: web.BaseRequest, source: SourceConfig) -> web.StreamResponse:
        started = time.perf_counter()
        if request.method not in HOOK_METHODS:
            return _json(405, {"error": f"method {request.method} not allowed"}, {"Allow": ", ".join(HOOK_METHODS)})
        address = limits.client_address(request, self.gateway.trusted_proxies)
        # The allow-list is Pure360's only credential, so failing it is a 401 like a bad secret.
        allowed = limits.address_allowed(address, source.allow_ips)
        if not allowed or not self._authenticators[source.id](request.headers):
            challenge = auth.challenge(source)
            log.info("refused: bad credentials", extra={"source": source.id, "remote": address})
            return _json(401, {"error": "unauthorized"}, {"WWW-Authenticate": challenge} if challenge else None)
        if request.method == "HEAD":
            return web.Response(status=200)  # Falconide's URL check
        if request.method == "GET" and not raw_query(request):
            return _json(200, {"status": "ok"})  # a URL check; nothing to keep
        max_bytes = source.max_body_bytes or self.gateway.max_body_bytes
        try:
            encoding = limits.content_encoding(request)
            wire = limits.complete_body(request, max_bytes)
            if wire is None:
                wire = await limits.read_body(request, max_bytes, self.gateway.read_timeout_seconds)
            # A source's own limit bounds the inflated body too: a gzip body of a few KiB may inflate to MiBs.
            inflated_max = min(self.gateway.max_decompressed_bytes, source.max_body_bytes or MAX_BODY_BYTES)
            body = limits.decode_body(wire, encoding, inflated_max)
        except limits.RequestRefused as refused:
            log.info("refused", extra={"source": source.id, "status": refused.status, "reason": refused.reason})
            return _json(refused.status, {"error": refused.reason}, {"Connection": "close"})
        except TimeoutError:
            return _json(408, {"error": "request body not received in time"}, {"Connection": "close"})
        envelope = self._envelope(request, source, body, address)
        try:
            path = await self.publisher.persist(envelope)
        except SpoolFull:
            log.error(
                "refused: kafka down and spool full", extra={"source": source.id, "request_id": envelope.request_id}
            )
            return _json(503, {"error": "temporarily unable to store"}, {"Retry-After": _RETRY_AFTER_SECONDS})
        except Exception as exc:
            log.exception(
                "could not store request",
                extra={"source": source.id, "request_id": envelope.request_id, "error": repr(exc)},
            )
            return _json(503, {"error": "temporarily unable to store"}, {"Retry-After": _RETRY_AFTER_SECONDS})
        self.tally.acknowledged(path, time.perf_counter() - started)
        self.tally.accepted(source.id, len(body))
        accepted = b'{"status":"accepted","request_id":"%s"}' % envelope.request_id.encode()
        return WholeResponse(accepted)

    def _envelope(self, request: web.BaseRequest, source: SourceConfig, body: bytes, address: str | None) -> Envelope:
        # Informational copies, each cut to MAX_KEPT_HEADER (many lines of one header join into one value):
        # the envelope must stay within the room a record keeps beside its body.
        given = request.headers
        headers: dict[str, str] = {}
        for name in self._kept_headers[source.id]:
            # Each of several lines for the forwarding chain; the first line of the others (one, in practice).
            value = limits.joined(request, name) if name == "x-forwarded-for" else given.get(name)
            if value is not None:
                headers[name] = lossless_text(value[:MAX_KEPT_HEADER])
        options = {"timezone": source.timezone} if source.timezone != "UTC" else {}
        return Envelope(
            source_id=source.id,
            provider=source.provider,
            request_id=new_request_id(),
            received_at=utc_now(),
            method=request.method,
            content_type=lossless_text(given.get("Content-Type", "")),
            body=body,
            headers=headers,
            remote_addr=address,
            query=lossless_text(raw_query(request)),
            options=options,
        )


async def healthz(request: web.BaseRequest) -> web.Response:
    return _json(200, {"status": "ok"})


def _metrics_body() -> bytes:
    # With --workers N every process answers for all of them (prometheus-client multiprocess mode).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()


def readyz_handler(publisher: RawPublisher) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    async def readyz(request: web.BaseRequest) -> web.Response:
        ready = publisher.ready
        body = {"ready": ready, "kafka": publisher.kafka_up, "spool_bytes": publisher.spool.size}
        return _json(200 if ready else 503, body)

    return readyz


def metrics_handler(tally: metrics.RequestTally) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    async def serve_metrics(request: web.BaseRequest) -> web.Response:
        tally.flush()  # this process's counts are exact at its own scrape
        response = web.Response(body=_metrics_body())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    return serve_metrics


def raw_query(request: web.BaseRequest) -> str:
    """The query as it came on the request line. aiohttp's ``query_string`` is decoded once already (``%2525``
    reads ``%25``, ``%20`` a space), so an adapter decoding the stored query would decode it twice."""
    target = request.raw_path
    start = target.find("?")
    return "" if start < 0 else target[start + 1 :].partition("#")[0]


def lossless_text(value: str) -> str:
    """``value`` as text the envelope's JSON can hold. aiohttp reads header bytes that are not UTF-8 (obs-text,
    which RFC 9110 allows: a latin-1 ``User-Agent``) as surrogate escapes, which no JSON encoder writes: such
    a value is kept as latin-1, one character a byte, so the request is stored instead of failing for good."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value
