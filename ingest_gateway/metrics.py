"""The gateway's Prometheus metrics: every refusal, spool and producer error is counted by name."""

from __future__ import annotations

import bisect

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("espwire_gateway_requests_total", "Webhook requests answered", ["source", "provider", "status"])
REQUEST_BYTES = Counter("espwire_gateway_request_bytes_total", "Body bytes accepted", ["source", "provider"])
ACK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
ACK_LATENCY = Histogram(
    "espwire_gateway_ack_seconds",
    "Time from a request's arrival to its durable acknowledgement",
    ["path"],
    buckets=ACK_BUCKETS,
)
PRODUCER_ERRORS = Counter("espwire_gateway_producer_errors_total", "Kafka sends that failed or timed out")
SPOOL_BYTES = Gauge("espwire_gateway_spool_bytes", "Bytes waiting in the local spool", multiprocess_mode="livesum")
SPOOLED = Counter("espwire_gateway_spooled_records_total", "Requests acknowledged from the spool")
DRAINED = Counter("espwire_gateway_spool_drained_records_total", "Spooled requests republished to Kafka")
TORN = Counter("espwire_gateway_spool_torn_segments_total", "Spool segments that ended in a torn record")
IN_FLIGHT = Gauge("espwire_gateway_in_flight_requests", "Requests being handled", multiprocess_mode="livesum")
KAFKA_UP = Gauge(
    "espwire_gateway_kafka_up", "1 while Kafka acknowledges, 0 while the spool takes over", multiprocess_mode="livemin"
)


class RequestTally:
    """The per-request counts as plain integers, added to the Prometheus metrics in bulk.

    Each labelled ``inc()`` or ``observe()`` takes a lock (and a histogram's a Python loop over its
    buckets): together a sixth of the handler's own cost. Requests only bump integers here, and
    ``flush`` carries the sums over: before every scrape of this process, once a second (a scrape
    of another ``--workers`` process reads the shared files), and at shutdown. The in-flight gauge
    is the count at the last flush.
    """

    def __init__(self, providers: dict[str, str]) -> None:
        self._providers = providers  # source id -> provider, for the labels
        self.in_flight = 0
        self.requests: dict[tuple[str, int], int] = {}
        self.body_bytes: dict[str, int] = {}
        # Per path: one count per bucket (the last is +Inf), and the sum of the seconds.
        self.ack_counts = {path: [0] * (len(ACK_BUCKETS) + 1) for path in ("kafka", "spool")}
        self.ack_sums = dict.fromkeys(self.ack_counts, 0.0)
        for path in self.ack_counts:
            ACK_LATENCY.labels(path)  # exported from the start, at zero: alerts see the spool's series too

    def answered(self, source_id: str, status: int) -> None:
        key = (source_id, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def accepted(self, source_id: str, size: int) -> None:
        self.body_bytes[source_id] = self.body_bytes.get(source_id, 0) + size

    def acknowledged(self, path: str, seconds: float) -> None:
        self.ack_counts[path][bisect.bisect_left(ACK_BUCKETS, seconds)] += 1
        self.ack_sums[path] += seconds

    def flush(self) -> None:
        requests, self.requests = self.requests, {}
        for (source_id, status), count in requests.items():
            REQUESTS.labels(source_id, self._providers[source_id], str(status)).inc(count)
        body_bytes, self.body_bytes = self.body_bytes, {}
        for source_id, size in body_bytes.items():
            REQUEST_BYTES.labels(source_id, self._providers[source_id]).inc(size)
        for path, counts in self.ack_counts.items():
            if any(counts):
                _add_to_histogram(ACK_LATENCY.labels(path), counts, self.ack_sums[path])
                self.ack_counts[path] = [0] * len(counts)
                self.ack_sums[path] = 0.0
        IN_FLIGHT.set(self.in_flight)


def _add_to_histogram(child: Histogram, counts: list[int], total: float) -> None:
    # prometheus-client has no bulk observe: add to its per-bucket values (non-cumulative, as its
    # observe() keeps them) and its sum directly. tests/unit/ingest_gateway/test_metrics.py checks
    # that the result equals observe() one value at a time, so a library change fails loudly.
    buckets = child._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    child._sum.inc(total)
