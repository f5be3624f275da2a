"""The gateway's tallied metrics give exactly what prometheus-client's own calls would give."""

import random

from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from ingest_gateway.metrics import ACK_BUCKETS, RequestTally, _add_to_histogram


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in histogram.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_bulk_add_equals_one_observe_per_value() -> None:
    values = [random.Random(7).expovariate(200) for _ in range(5000)] + list(ACK_BUCKETS) + [0.0, 99.0]
    one_by_one = Histogram("one_by_one", "x", buckets=ACK_BUCKETS, registry=CollectorRegistry())
    for value in values:
        one_by_one.observe(value)
    tally = RequestTally({"s": "sparkpost"})
    for value in values:
        tally.acknowledged("kafka", value)
    bulk = Histogram("one_by_one", "x", buckets=ACK_BUCKETS, registry=CollectorRegistry())
    _add_to_histogram(bulk, tally.ack_counts["kafka"], tally.ack_sums["kafka"])
    expected, got = _samples(one_by_one), _samples(bulk)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) < 1e-6, key


def test_flush_carries_counts_over_and_starts_again() -> None:
    labels = {"source": "tally-src", "provider": "ipost", "status": "200"}

    def answered() -> float:
        return REGISTRY.get_sample_value("espwire_gateway_requests_total", labels) or 0.0

    before = answered()
    tally = RequestTally({"tally-src": "ipost"})
    for _ in range(3):
        tally.answered("tally-src", 200)
    tally.accepted("tally-src", 10)
    tally.in_flight = 2
    tally.flush()
    assert answered() == before + 3
    assert REGISTRY.get_sample_value("espwire_gateway_in_flight_requests") == 2
    assert tally.requests == {} and tally.body_bytes == {}
    tally.flush()  # nothing new: nothing added twice
    assert answered() == before + 3
