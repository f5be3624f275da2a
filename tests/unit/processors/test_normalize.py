"""Event ids are stable across versions: the dedupe window holds ids written by earlier processors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from espwire.envelope import Envelope
from espwire.topics import Topics
from processors.adapters.fields import epoch_or_time
from processors.normalize import event_id
from processors.pipeline import Pipeline
from processors.timestamps import parse_time

# Written by the implementation before 2026-12-01's (six blake2b updates per id): any change to how
# an id is hashed must keep these, or redeliveries across a deploy would come out twice.
KNOWN_IDS: list[tuple[tuple[str, str, str | None, Any], str]] = [
    (("sparkpost", "delivery", "92356927693813856", None), "f92b9dca-99f3-7ce8-3541-8565967f2032"),
    (("falconide", "open", None, {"b": 1, "a": [1, "x"], "TRANSID": "123"}), "d30488cb-5551-8d84-d7e0-3802923f7cd3"),
    (("ipost", "click", "\udcff-é", None), "a3276bb6-9a14-bbb2-abf2-cc5a5cad7d2f"),
    (("pure360", "x\ud800y", None, {2: "non-str key"}), "e3f103b4-fe4b-7d46-8b64-533e4adf8371"),
]


@pytest.mark.parametrize(("args", "expected"), KNOWN_IDS)
def test_event_ids_stay_what_they_were(args: tuple[str, str, str | None, Any], expected: str) -> None:
    assert event_id(*args) == expected
    assert event_id(*args) == expected  # the provider's cached prefix is not changed by use


def test_epoch_fast_path_agrees_with_parse_time() -> None:
    for seconds in (1_000_000_000, 1_795_161_659, 1_795_161_660, 1_795_161_661, 3_999_999_999):
        assert epoch_or_time(seconds) == epoch_or_time(str(seconds)) == parse_time(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-01:00",  # the shift to UTC overflows datetime
        "0001-01-01T00:00:00+01:00",
        "0999-06-01T00:00:00Z",  # would print as "999-06-01T..."
        "1970-01-01T00:00:00Z",  # an unset time, like epoch 0
        "2101-01-01T00:00:00Z",
    ],
)
def test_iso_times_outside_the_epoch_range_are_no_time_rather_than_an_error(text: str) -> None:
    assert parse_time(text) is None
    assert epoch_or_time(text) is None
    assert parse_time("2026-11-20T09:00:00+01:00") == "2026-11-20T08:00:00Z"


class _Record:
    def __init__(self, envelope: Envelope) -> None:
        self.value = envelope.body
        self.headers = envelope.kafka_headers()


def _adapted_ids(provider: str, body: bytes) -> list[str]:
    envelope = Envelope(
        source_id=provider,
        provider=provider,
        request_id="r1",
        received_at="2026-11-24T00:00:00Z",
        method="POST",
        content_type="application/json",
        body=body,
    )
    events, dead = Pipeline(Topics("t")).adapt([_Record(envelope)])
    assert dead == []
    return [e["id"] for e in events]


def test_equal_events_in_one_request_get_ids_of_their_own_and_the_same_ones_again_on_redelivery() -> None:
    click = {"TRANSID": "1", "EMAIL": "a@example.com", "EVENT": "clicked", "TIMESTAMP": "1795161700"}
    other = {**click, "EMAIL": "b@example.com"}
    body = json.dumps([click, other, click, click]).encode()
    ids = _adapted_ids("falconide", body)
    assert len(set(ids)) == 4  # three clicks of one person in one second are three clicks
    assert _adapted_ids("falconide", json.dumps([click]).encode())[0] == ids[0]  # the first keeps its id
    assert _adapted_ids("falconide", body) == ids  # a redelivered request: the same ids, so dedupe drops it


def test_equal_provider_event_ids_in_one_request_stay_one_event() -> None:
    event = {"msys": {"message_event": {"type": "delivery", "event_id": "42", "rcpt_to": "a@example.com"}}}
    ids = _adapted_ids("sparkpost", json.dumps([event, event]).encode())
    assert ids[0] == ids[1]  # SparkPost named it once: the same event twice, for dedupe to drop
