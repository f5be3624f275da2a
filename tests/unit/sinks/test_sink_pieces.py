"""Pure parts of the sinks: routing rules, signatures, file names, options, stdout rendering, row building."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from espwire.config import ConfigError, KafkaConfig, Settings, SinkConfig
from sinks.base import Poison
from sinks.files import file_name, parse_file_name
from sinks.http_forward import CircuitBreaker, retry_after_seconds, secret_key, sign, webhook_id
from sinks.kafka_router import KafkaRouterOptions, KafkaRouterSink
from sinks.postgres import _build_rows, _Rows, event_time
from sinks.registry import SINK_BUILDERS, build_sink
from sinks.runner import backoff_seconds
from sinks.stdout import StdoutOptions, StdoutSink
from sinks.suppression import suppression_reason
from tests.unit.sinks.factory import make_event

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_signature_verifies_with_the_reference_library() -> None:
    body = b'[{"id":"1"}]'
    header = sign(secret_key(SECRET), "msg_1", 1_700_000_000, body)
    # The library checks the timestamp against now: sign for now.
    import time

    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret_key(SECRET), "msg_1", now, body),
    }
    Webhook(SECRET).verify(body, headers)
    assert header.startswith("v1,")
    with pytest.raises(ValueError):
        secret_key("not-a-secret")


def test_webhook_id_depends_on_the_events_only() -> None:
    a, b = make_event(1), make_event(2)
    assert webhook_id([a, b]) == webhook_id([dict(a), dict(b)]) != webhook_id([b, a])


def test_retry_after_and_backoff() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    delays = [backoff_seconds(n, 0.2, 5.0) for n in range(10)]
    assert all(0.1 <= d <= 5.0 for d in delays) and max(delays) >= 2.5


def test_circuit_breaker_opens_after_failures_and_closes_on_success() -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=60)
    breaker.failure()
    assert not breaker.is_open
    breaker.failure()
    assert breaker.is_open
    breaker.success()
    assert not breaker.is_open


def test_file_names_round_trip() -> None:
    name = file_name(3, 1200, 1399, "jsonl")
    assert name == "part-p00003-00000000000000001200-00000000000000001399.jsonl.gz"
    assert parse_file_name(name) == (3, 1200, 1399)
    assert parse_file_name(".part-p00003-00000000000000001200-ab12.tmp") is None


def test_router_topics() -> None:
    settings = Settings(kafka=KafkaConfig(topic_prefix="espwire", bootstrap="127.0.0.1:1"))
    options = KafkaRouterOptions.from_config(
        SinkConfig(
            name="r",
            type="kafka_router",
            routes=[
                {"match": {"type": ["email.*"]}, "topic": "{prefix}.{type}"},
                {"match": {"where": {"data.bounce.severity": "hard"}}, "topic": "{prefix}.hard"},
                {"match": {"source": ["spark*"]}, "topic": "{prefix}.{type}"},
            ],
        )  # type: ignore[call-arg]
    )
    router = KafkaRouterSink(options, settings)
    assert router.topics_for(make_event(1, type="email.bounced", bounce={"severity": "hard"})) == [
        "espwire.email.bounced",
        "espwire.hard",
    ]
    assert router.topics_for(make_event(1, type="sms.failed", source_id="pure")) == []


def test_a_topic_template_with_an_unknown_field_is_a_config_error(tmp_path: Path) -> None:
    # Before, it was accepted and every event then raised KeyError out of write_batch, stopping the sink.
    settings = Settings(datadir=tmp_path, kafka=KafkaConfig(bootstrap="127.0.0.1:1"))
    for topic in ("{prefix}.{tpye}", "{prefix}.{type", "{0}"):
        with pytest.raises(ConfigError, match=r"sinks\.r\.routes\.0\.topic"):
            build_sink(SinkConfig(name="r", type="kafka_router", routes=[{"topic": topic}]), settings)  # type: ignore[call-arg]


def test_suppression_reasons() -> None:
    assert suppression_reason(make_event(1, type="email.bounced", bounce={"severity": "hard"})) == "hard_bounce"
    assert suppression_reason(make_event(1, type="email.bounced", reject_reason="bounced")) == "hard_bounce"
    soft = make_event(1, type="email.bounced", reject_reason="bounced", bounce={"severity": "soft"})
    assert suppression_reason(soft) is None
    assert suppression_reason(make_event(1, type="email.complained")) == "complaint"
    assert suppression_reason(make_event(1, type="email.unsubscribed")) == "unsubscribe"
    assert suppression_reason(make_event(1, type="email.opened")) is None
    # Undetermined by the provider: the enricher's reading decides; without one, a bounce still suppresses.
    unclassified = {"severity": "undetermined", "inferred_severity": "soft"}
    assert suppression_reason(make_event(1, type="email.bounced", reject_reason="bounced", bounce=unclassified)) is None
    unclassified = {"severity": "undetermined", "inferred_severity": "hard"}
    assert suppression_reason(make_event(1, type="email.bounced", bounce=unclassified)) == "hard_bounce"
    bare = {"severity": "undetermined"}
    assert (
        suppression_reason(make_event(1, type="email.bounced", reject_reason="bounced", bounce=bare)) == "hard_bounce"
    )
    # Refused before sending: suppressed for an invalid or unsubscribed address, not for a policy block.
    assert suppression_reason(make_event(1, type="email.rejected", reject_reason="invalid")) == "hard_bounce"
    assert suppression_reason(make_event(1, type="email.rejected", reject_reason="unsubscribed")) == "unsubscribe"
    assert suppression_reason(make_event(1, type="email.rejected", reject_reason="blocked")) is None
    assert suppression_reason(make_event(1, type="email.deferred", bounce={"category": "dns_failure"})) is None
    # Our reading of a reply never suppresses outside a bounce: a deferral is still retried, and a template
    # that failed to render is refused "554 5.3.3" for every recipient.
    read_hard = {"category": "mailbox_unknown", "inferred_severity": "hard"}
    assert suppression_reason(make_event(1, type="email.deferred", bounce=read_hard)) is None
    failed = make_event(
        1, type="email.rejected", reject_reason="other", bounce={**read_hard, "category": "protocol_error"}
    )
    assert suppression_reason(failed) is None
    assert suppression_reason(make_event(1, type="email.rejected", bounce={"severity": "hard"})) == "hard_bounce"
    assert suppression_reason(make_event(1, type="unknown", bounce={"severity": "hard"})) is None
    # SparkPost's bounce class 90 (hard, reject reason unsubscribed): the recipient unsubscribed by a reply.
    unsubscribing = {"severity": "hard", "class_code": "90", "category": "unsubscribe"}
    bounced = make_event(1, type="email.bounced", reject_reason="unsubscribed", bounce=unsubscribing)
    assert suppression_reason(bounced) == "unsubscribe"


def test_every_kind_is_registered_and_bad_options_name_their_path(tmp_path: Path) -> None:
    assert set(SINK_BUILDERS) == {"kafka_router", "postgres", "files", "http_forward", "suppression", "stdout"}
    settings = Settings(datadir=tmp_path)
    with pytest.raises(ConfigError, match=r"sinks\.pg\.dsnn"):
        build_sink(SinkConfig(name="pg", type="postgres", dsn="postgresql://x", dsnn="typo"), settings)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"sinks\.f\.path"):
        build_sink(SinkConfig(name="f", type="files"), settings)
    sink = build_sink(SinkConfig(name="out", type="stdout"), settings)
    assert sink.name == "out"
    # A suppression list without addresses skipped every event and looked healthy.
    with pytest.raises(ConfigError, match=r"privacy\.email = \"drop\""):
        build_sink(SinkConfig(name="s", type="suppression", dsn="postgresql://x", privacy={"email": "drop"}), settings)  # type: ignore[call-arg]


async def test_stdout_filters_and_renders() -> None:
    stream = io.StringIO()
    sink = StdoutSink(StdoutOptions.from_config(SinkConfig(name="tail", type="stdout", types=["email.b*"])), stream)  # type: ignore[call-arg]
    outcome = await sink.write_batch([make_event(1, type="email.bounced"), make_event(2, type="email.opened")])
    assert (outcome.written, outcome.skipped) == (1, 1)
    assert stream.getvalue().startswith('{"specversion":"1.0"')
    pretty = StdoutSink(StdoutOptions.from_config(SinkConfig(name="tail", type="stdout", format="pretty")), stream)  # type: ignore[call-arg]
    assert "email.opened" in pretty.render(make_event(2, type="email.opened"))


def test_stdout_pretty_shows_webhook_control_characters_escaped() -> None:
    # `espwire tail` on a terminal: a clicked URL or an address carrying an escape sequence (set the
    # window title, clear the screen) or a newline (a fake line) was written to the terminal as it came.
    options = StdoutOptions.from_config(SinkConfig(name="tail", type="stdout", format="pretty"))  # type: ignore[call-arg]
    stream = io.StringIO()
    event = make_event(1, type="email.clicked", email="a\x1b]0;owned\x07@example.com")
    event["data"]["link"] = {"url": "https://shop.example/\x1b[2J\nFAKE line\u2028"}
    line = StdoutSink(options, stream).render(event)
    assert "\n" not in line and "\u2028" not in line and "\x07" not in line
    assert line.count("\x1b") == 2, "only the sink's own colour codes"
    assert "a\\x1b]0;owned\\x07@example.com" in line and "url=https://shop.example/\\x1b[2J\\nFAKE line\\u2028" in line


def test_postgres_rows_are_built_once_and_read_again_whole() -> None:
    # A COPY that stops part way leaves its row generator behind; the retry's COPY (or the isolation)
    # must still see every row, in order, without building one twice or poisoning an event twice.
    events = [make_event(i) for i in range(6)]
    del events[2]["type"]
    times = [(i, event_time(e)) for i, e in enumerate(events)]
    poison: list[Poison] = []
    rows = _Rows(_build_rows(events, None, times, poison))
    first = rows.values()
    assert [next(first)[0], next(first)[0]] == [events[0]["id"], events[1]["id"]]
    assert [values[0] for values in rows.values()] == [e["id"] for i, e in enumerate(events) if i != 2]
    assert [values[0] for values in rows.values()] == [e["id"] for i, e in enumerate(events) if i != 2]
    assert [row.index for row in rows.all()] == [0, 1, 3, 4, 5]
    assert [(p.index, p.reason) for p in poison] == [(2, "invalid_event")]

    partly = _Rows(_build_rows(events[:2], None, times[:2], poison))
    next(partly.values())
    assert [row.index for row in partly.all()] == [0, 1]
