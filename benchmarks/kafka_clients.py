"""The Kafka client ceiling: how many 1 KB records per second one process can produce, acks=all.

    python -m benchmarks.kafka_clients aiokafka|confluent --bootstrap B --topic T --seconds S --out F

aiokafka: the processor's own producer settings (linger 5 ms, 512 KB batches), sends in windows of
2,000 records then waits for their acks, like the consumer loop publishing a batch. confluent: the
same through librdkafka (confluent-kafka's Producer; Debian's kcat links a librdkafka too old for
Tansu). CPU time is this process's own (getrusage), so it is the client's cost per record.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from pathlib import Path
from typing import Any

import orjson

RECORD = b'{"specversion":"1.0","type":"email.delivered","data":{"pad":"' + b"x" * 960 + b'"}}'


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _aiokafka(bootstrap: str, topic: str, seconds: float, window: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        # warm-up: metadata and connections
        await asyncio.gather(*[await producer.send(topic, RECORD, key=b"%d" % i) for i in range(200)])
        count = 0
        cpu0, t0 = _cpu(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            futures = [await producer.send(topic, RECORD, key=b"k%d" % (count + i)) for i in range(window)]
            await asyncio.gather(*futures)
            count += window
        elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    finally:
        await producer.stop()
    return {"client": "aiokafka", "records": count, "elapsed_s": elapsed, "cpu_s": cpu}


def _confluent(bootstrap: str, topic: str, seconds: float, window: int) -> dict[str, Any]:
    from confluent_kafka import Producer

    errors = 0
    acked = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal errors, acked
        if err is not None:
            errors += 1
        else:
            acked += 1

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 5,
            "batch.size": 512 * 1024,
            "queue.buffering.max.messages": 500_000,
        }
    )
    for i in range(200):
        producer.produce(topic, RECORD, key=b"%d" % i)
    producer.flush(30)
    acked = 0
    count = 0
    cpu0, t0 = _cpu(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for i in range(window):
            while True:
                try:
                    producer.produce(topic, RECORD, key=b"k%d" % (count + i), on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        count += window
        producer.flush(30)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    import confluent_kafka

    return {
        "client": f"librdkafka {confluent_kafka.libversion()[0]} (confluent-kafka {confluent_kafka.version()[0]})",
        "records": acked,
        "errors": errors,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("client", choices=["aiokafka", "confluent"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.client == "aiokafka":
        import uvloop

        result = uvloop.run(_aiokafka(args.bootstrap, args.topic, args.seconds, args.window))
    else:
        result = _confluent(args.bootstrap, args.topic, args.seconds, args.window)
    result["record_bytes"] = len(RECORD)
    result["records_per_s"] = round(result["records"] / result["elapsed_s"], 1)
    result["cpu_ms_per_1000"] = round(result["cpu_s"] / max(1, result["records"]) * 1e6, 2)
    result["pid"] = os.getpid()
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
