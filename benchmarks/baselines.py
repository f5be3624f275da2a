"""The baseline servers the gateway is compared with; each runs as its own process.

    python -m benchmarks.baselines bare --loop asyncio|uvloop --port P
    python -m benchmarks.baselines server --port P
    python -m benchmarks.baselines aiokafka --port P --bootstrap B --topic T
    python -m benchmarks.baselines fastapi --port P --bootstrap B --topic T

* bare: aiohttp, read the body, answer 200 - the ceiling of any aiohttp handler.
* server: the same handler on aiohttp's low-level ``web.Server`` (uvloop): no Application, router,
  middlewares or signals - the ceiling of anything served by aiohttp's HTTP protocol.
* aiokafka: aiohttp (uvloop) + AIOKafkaProducer.send_and_wait per request, acks=all - what the gateway
  does minus auth, limits, the envelope and the spool.
* fastapi: the naive way - FastAPI + uvicorn, the body parsed into pydantic models, re-serialised and
  sent with send_and_wait per request (acks=all). Access log off (it would only make it slower).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        # The whole 1 KB body fits the buffer; `return` reads it off the socket (and discards it).
        client_body_buffer_size 64k;
        client_max_body_size 10m;
        location / {{
            default_type application/json;
            return 200 '{{"status":"accepted"}}';
        }}
    }}
}}
"""


def _bare(loop: str, port: int) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"status":"accepted"}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/hooks/{source_id}", handle)
    if loop == "uvloop":
        import uvloop

        uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


def _server(port: int) -> None:
    import asyncio

    import uvloop
    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.Response(body=b'{"status":"accepted"}', content_type="application/json")

    async def serve() -> None:
        runner = web.ServerRunner(web.Server(handle), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        await asyncio.Event().wait()  # until the benchmark stops the process

    uvloop.run(serve())


def _aiokafka(port: int, bootstrap: str, topic: str) -> None:
    import uvloop
    from aiohttp import web
    from aiokafka import AIOKafkaProducer

    async def producer_ctx(app: web.Application) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=2)
        await producer.start()
        app["producer"] = producer
        yield
        await producer.stop()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        await request.app["producer"].send_and_wait(topic, body)
        return web.Response(body=b'{"status":"accepted"}', content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(producer_ctx)
    app.router.add_post("/hooks/{source_id}", handle)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


def _fastapi(port: int, bootstrap: str, topic: str) -> None:
    from benchmarks.naive_fastapi import serve

    serve(port, bootstrap, topic)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["bare", "server", "aiokafka", "fastapi"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--topic", default="bench.baseline")
    args = parser.parse_args()
    if args.kind == "bare":
        _bare(args.loop, args.port)
    elif args.kind == "server":
        _server(args.port)
    elif args.kind == "aiokafka":
        _aiokafka(args.port, args.bootstrap, args.topic)
    else:
        _fastapi(args.port, args.bootstrap, args.topic)


if __name__ == "__main__":
    main()
