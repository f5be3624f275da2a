"""``data.raw`` frozen by the dedupe fingerprint: the published event is the same JSON value."""

from __future__ import annotations

import json
from typing import Any, cast

import orjson

from espwire.event import CanonicalEvent
from espwire.topics import Topics
from processors.deduplicate import content_fingerprint
from processors.normalize import freeze_raw
from processors.pipeline import Pipeline, serialise_event


def _event() -> CanonicalEvent:
    raw = {"msys": {"track_event": {"type": "open", "event_id": "42", "b": [1, {"z": None, "a": "é"}]}}}
    data: dict[str, Any] = {"provider": "sparkpost", "source_id": "sp", "provider_event_id": "42", "raw": raw}
    return cast(
        CanonicalEvent, {"id": "evt-42", "source": "/hooks/sp", "type": "email.opened", "time": "t", "data": data}
    )


def test_the_serialised_event_is_the_same_value_with_sorted_raw_keys() -> None:
    event = _event()
    before = orjson.loads(serialise_event("t", event).value)
    fingerprint = content_fingerprint(event)
    assert isinstance(event["data"]["raw"], orjson.Fragment)
    after = serialise_event("t", event).value
    assert orjson.loads(after) == before
    assert b'"raw":{"msys":{"track_event":{"b":[1,{"a":"\xc3\xa9","z":null}],"event_id":"42","type":"open"}}}' in after
    assert content_fingerprint(event) == fingerprint  # freezing twice changes nothing
    assert freeze_raw(event) is event["data"]["raw"]


def test_a_dead_letter_written_by_the_json_module_keeps_a_frozen_raw() -> None:
    event = _event()
    content_fingerprint(event)
    event["data"]["note"] = "\ud800"  # type: ignore[typeddict-unknown-key]  # orjson refuses a lone surrogate
    record = Pipeline(Topics("t"))._dead_event(event, "unencodable_event", "x")
    value = json.loads(record.value)
    assert value["data"]["raw"]["msys"]["track_event"]["event_id"] == "42"
