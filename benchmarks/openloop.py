"""Open-loop HTTP load at a fixed rate, latency measured from the *intended* send time.

wrk2 is not packaged in Debian, and wrk's Lua ``delay()`` only paces a closed loop (a slow answer
delays the next request, which hides the queueing it causes: coordinated omission). This generator
works like wrk2: request i is due at t0 + i/rate whatever happened before; each is queued for the
next free keep-alive connection and its latency runs from its due time to the last byte of the
answer, so time spent waiting behind a slow answer is counted. It speaks raw HTTP/1.1 over asyncio
protocols under uvloop (an aiohttp client would cost more CPU than the server under test).

With ``--e2e-bootstrap`` it also consumes ``--e2e-topic`` and reports, for each request, the time
from its 200 to its event appearing there (matched on SparkPost event_id = provider_event_id).

    python -m benchmarks.openloop --port P --rate R --duration S --body-file F [--header 'K: V']...
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

EVID = b"__EVID__"


def percentiles(samples: list[float], points: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """Nearest-rank percentiles in milliseconds of samples given in seconds."""
    if not samples:
        return {f"p{p:g}": float("nan") for p in points} | {"max": float("nan"), "mean": float("nan")}
    ordered = sorted(samples)
    n = len(ordered)
    out = {f"p{p:g}": round(ordered[min(n - 1, max(0, int(p / 100 * n + 0.5) - 1))] * 1000, 3) for p in points}
    out["max"] = round(ordered[-1] * 1000, 3)
    out["mean"] = round(sum(ordered) / n * 1000, 3)
    return out


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; answers need a Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        start = head.find(b"content-length:")
        if start >= 0:
            stop = head.find(b"\r\n", start)
            length = int(head[start + 15 : stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buffer[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    late_start_max: float = 0.0  # how far behind schedule the generator itself fell
    acked_at: dict[bytes, float] = field(default_factory=dict)
    e2e: list[float] = field(default_factory=list)


async def run(args: argparse.Namespace, template: bytes) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    unique = EVID in template
    head_lines = [f"POST {args.path} HTTP/1.1", f"Host: 127.0.0.1:{args.port}", *args.header]
    res = Results()
    consumer = None
    consume_task: asyncio.Task[None] | None = None
    if args.e2e_bootstrap:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=args.e2e_bootstrap, enable_auto_commit=False)
        await consumer.start()
        parts = consumer.partitions_for_topic(args.e2e_topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(args.e2e_topic) or {0}
        tps = [TopicPartition(args.e2e_topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)

        async def consume() -> None:
            assert consumer is not None
            while True:
                batch = await consumer.getmany(timeout_ms=100, max_records=5000)
                now = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        event = orjson.loads(record.value)
                        ev_id = (event.get("data") or {}).get("provider_event_id")
                        acked = res.acked_at.pop(ev_id.encode(), None) if ev_id else None
                        if acked is not None:
                            res.e2e.append(now - acked)

        consume_task = asyncio.create_task(consume())

    conns: list[Connection] = []
    for _ in range(args.connections):
        _, proto = await loop.create_connection(Connection, "127.0.0.1", args.port)
        conns.append(proto)
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    total = int(args.rate * args.duration)

    def build(i: int) -> tuple[bytes, bytes]:
        ev_id = f"{args.id_prefix}{i:09d}".encode()
        body = template.replace(EVID, ev_id) if unique else template
        head = "\r\n".join([*head_lines, f"Content-Length: {len(body)}", "", ""]).encode()
        return head + body, ev_id

    prebuilt = None if unique else build(0)[0]

    async def worker(conn: Connection) -> None:
        while True:
            i, due = await queue.get()
            if unique:
                data, ev_id = build(i)
            else:
                data, ev_id = prebuilt or b"", b""
            try:
                status = await conn.request(data)
            except ConnectionError:
                res.errors += 1
                queue.task_done()
                return
            done = time.perf_counter()
            res.latencies.append(done - due)
            res.statuses[status] = res.statuses.get(status, 0) + 1
            if status == 200 and unique and consumer is not None:
                res.acked_at[ev_id] = done
            queue.task_done()

    workers = [asyncio.create_task(worker(c)) for c in conns]
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        due_count = min(total, int((now - t0) * args.rate) + 1)
        while sent < due_count:
            due = t0 + sent / args.rate
            res.late_start_max = max(res.late_start_max, now - due)
            queue.put_nowait((sent, due))
            sent += 1
        await asyncio.sleep(0.0005)
    try:
        await asyncio.wait_for(queue.join(), timeout=args.drain_timeout)
    except TimeoutError:
        res.errors += queue.qsize()
    elapsed = time.perf_counter() - t0
    for task in workers:
        task.cancel()
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    e2e_missing = 0
    if consumer is not None and consume_task is not None:
        deadline = time.perf_counter() + args.e2e_wait
        while res.acked_at and time.perf_counter() < deadline:  # noqa: ASYNC110 - polling a dict, bounded
            await asyncio.sleep(0.1)
        e2e_missing = len(res.acked_at)
        consume_task.cancel()
        await consumer.stop()
    out: dict[str, Any] = {
        "target_rate": args.rate,
        "requests": total,
        "completed": len(res.latencies),
        "achieved_rate": round(len(res.latencies) / elapsed, 1),
        "elapsed_s": round(elapsed, 3),
        "statuses": {str(k): v for k, v in res.statuses.items()},
        "errors": res.errors,
        "generator_late_max_ms": round(res.late_start_max * 1000, 3),
        "latency_ms": percentiles(res.latencies),
    }
    if consumer is not None:
        out["e2e_ms"] = percentiles(res.e2e)
        out["e2e_matched"] = len(res.e2e)
        out["e2e_missing"] = e2e_missing
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/hooks/sparkpost")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--drain-timeout", type=float, default=15.0)
    parser.add_argument("--e2e-bootstrap", default="")
    parser.add_argument("--e2e-topic", default="")
    parser.add_argument("--e2e-wait", type=float, default=10.0)
    parser.add_argument("--id-prefix", default="9")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(run(args, Path(args.body_file).read_bytes()))
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
