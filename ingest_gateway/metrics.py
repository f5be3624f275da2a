"""The gateway's Prometheus metrics: every refusal, spool and producer error is counted by name."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("espwire_gateway_requests_total", "Webhook requests answered", ["source", "provider", "status"])
REQUEST_BYTES = Counter("espwire_gateway_request_bytes_total", "Body bytes accepted", ["source", "provider"])
ACK_LATENCY = Histogram(
    "espwire_gateway_ack_seconds",
    "Time from a request's arrival to its durable acknowledgement",
    ["path"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
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
