"""Puts envelopes on espwire.raw: to Kafka (acks=all) while it answers, to the spool while it does not.

``persist`` returns only once the record is durable, which is what makes the gateway's 200 a
promise. A send that times out may still reach Kafka later and also sit in the spool: that gives a
duplicate raw record, never a loss, and the processors' dedupe removes the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from espwire.envelope import Envelope
from espwire.topics import MAX_RECORD_BYTES
from ingest_gateway import metrics
from ingest_gateway.group_commit import BATCH_BYTES, GroupCommitProducer
from ingest_gateway.spool import Spool

log = logging.getLogger("espwire.gateway.publisher")


class RawPublisher:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        spool: Spool,
        *,
        ack_timeout: float = 2.0,
        linger_ms: int = 2,
        compression: str | None = None,
        client_id: str = "espwire-gateway",
        probe_interval: float = 0.5,
        lanes: int = 2,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.spool = spool
        self.ack_timeout = ack_timeout
        self.linger_ms = linger_ms
        self.compression = compression
        self.client_id = client_id
        self.probe_interval = probe_interval
        self.lanes = lanes
        self._producers: list[AIOKafkaProducer] = []
        self._group_commit: GroupCommitProducer | None = None
        self._kafka_up = False
        self._was_up = False  # "kafka is back" only after it was gone, not at start-up
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def kafka_up(self) -> bool:
        return self._kafka_up

    @property
    def ready(self) -> bool:
        return not self._stopping and (self._kafka_up or self.spool.has_room)

    def refuse_readiness(self) -> None:
        """From now on /readyz says 503 (shutting down), while requests are still taken and stored."""
        self._stopping = True

    async def start(self) -> None:
        self.spool.open()
        await self._connect()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="raw-supervisor")

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._group_commit is not None:
            await self._group_commit.close()
        for producer in self._producers:
            with contextlib.suppress(Exception):
                await producer.stop()
        await self.spool.close()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=False,  # Tansu refuses it; dedupe downstream covers retries
            linger_ms=self.linger_ms,
            compression_type=self.compression,
            max_request_size=MAX_RECORD_BYTES,
            max_batch_size=BATCH_BYTES,
            request_timeout_ms=max(5000, int(self.ack_timeout * 3000)),
            retry_backoff_ms=100,
        )

    async def _connect(self) -> bool:
        # The first producer also drains the spool and probes the broker; each is one group-commit lane.
        producers = [self._new_producer() for _ in range(self.lanes)]
        try:
            await asyncio.wait_for(asyncio.gather(*(p.start() for p in producers)), timeout=max(self.ack_timeout, 5.0))
        except (KafkaError, OSError, TimeoutError) as exc:
            for producer in producers:
                with contextlib.suppress(Exception):
                    await producer.stop()
            log.warning("kafka not reachable; requests go to the spool", extra={"error": repr(exc)})
            self._set_up(False)
            return False
        self._producers = producers
        self._group_commit = GroupCommitProducer(
            producers, self.topic, ack_timeout=self.ack_timeout, batch_bytes=BATCH_BYTES, compression=self.compression
        )
        self._set_up(True)
        return True

    def _set_up(self, up: bool) -> None:
        if up != self._kafka_up and (self._was_up or not up):
            log.warning("kafka is %s", "back" if up else "down; spooling")
        self._was_up = self._was_up or up
        self._kafka_up = up
        metrics.KAFKA_UP.set(1 if up else 0)

    async def persist(self, envelope: Envelope) -> Literal["kafka", "spool"]:
        """Durable when it returns; raises SpoolFull when neither Kafka nor the spool can take it."""
        if self._kafka_up and self._group_commit is not None:
            try:
                # Bounded by ack_timeout inside the group commit: one timer per round trip, not per request.
                await self._group_commit.send(envelope.key, envelope.body, envelope.kafka_headers())
                return "kafka"
            except (KafkaError, TimeoutError) as exc:
                metrics.PRODUCER_ERRORS.inc()
                log.warning(
                    "kafka did not acknowledge in time; spooling",
                    extra={"request_id": envelope.request_id, "error": repr(exc)},
                )
                self._set_up(False)
        await self.spool.append(envelope)
        metrics.SPOOLED.inc()
        metrics.SPOOL_BYTES.set(self.spool.size)
        return "spool"

    async def _publish_batch(self, envelopes: list[Envelope]) -> None:
        producer = self._producers[0]
        futures = [await producer.send(self.topic, e.body, key=e.key, headers=e.kafka_headers()) for e in envelopes]
        await asyncio.wait_for(asyncio.gather(*futures), timeout=max(10.0, self.ack_timeout * 5))
        metrics.DRAINED.inc(len(envelopes))

    async def _probe(self) -> bool:
        if not self._producers:
            return await self._connect()
        try:
            await asyncio.wait_for(self._producers[0].client.fetch_all_metadata(), timeout=self.ack_timeout)
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    async def _supervise(self) -> None:
        """Finds Kafka again after an outage, then drains the spool into it in order."""
        while True:
            try:
                if not self._kafka_up and await self._probe():
                    self._set_up(True)
                if self._kafka_up and not self.spool.is_empty():
                    torn_before = self.spool.torn_records_skipped
                    drained = await self.spool.drain(self._publish_batch)
                    metrics.TORN.inc(self.spool.torn_records_skipped - torn_before)
                    metrics.SPOOL_BYTES.set(self.spool.size)
                    if drained:
                        log.info("spool drained", extra={"records": drained})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next round tries again; nothing is deleted unacknowledged
                metrics.PRODUCER_ERRORS.inc()
                log.warning("spool drain interrupted", extra={"error": repr(exc)})
                self._set_up(False)
            await asyncio.sleep(self.probe_interval)
