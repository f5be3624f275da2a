"""`espwire import` against the real broker: each fetched file lands on espwire.raw as envelopes of
its channel, and the processors' pipeline reads them into exactly the events the fixture expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from espwire.config import EXAMPLE_CONFIG, load_settings
from espwire.topics import Topics
from ingest_gateway.file_import import import_files, plan_import
from processors.pipeline import Pipeline
from tests.fixture_cases import PROVIDERS_DIR, sequence_mismatches
from tests.support.kafka import consume_all

ARTIFACTS = [
    ("pure360", "ftp", PROVIDERS_DIR / "pure360" / "ftp" / "events-2026-11-20.log"),
    ("pure360", "soap", PROVIDERS_DIR / "pure360" / "soap" / "getBatch-response-1.xml"),
    ("recurly_engage", "s3", PROVIDERS_DIR / "recurly_engage" / "s3" / "usages-2026-11-20T00-00-00.json"),
]


def _expected(artifact: Path) -> list[dict[str, object]]:
    expect = artifact.with_name(artifact.name.rsplit(".", 1)[0] + ".expect.json")
    events: list[dict[str, object]] = json.loads(expect.read_text())["expect_events"]
    return events


@pytest.mark.parametrize(("source_id", "channel", "artifact"), ARTIFACTS, ids=[a[1] for a in ARTIFACTS])
async def test_an_imported_file_gives_its_fixture_events(
    kafka_bootstrap: str, topic_prefix: str, source_id: str, channel: str, artifact: Path
) -> None:
    settings = load_settings(EXAMPLE_CONFIG)
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic_prefix": topic_prefix})})
    envelopes = plan_import(settings, source_id, channel, [artifact])
    await import_files(settings, kafka_bootstrap, envelopes)

    records = await consume_all(kafka_bootstrap, Topics(topic_prefix).raw, expect=len(envelopes))
    assert sorted(r.value for r in records) == sorted(e.body for e in envelopes)  # byte for byte
    result = await Pipeline(Topics(topic_prefix)).run(records)
    assert result.dead_letters == 0
    assert sequence_mismatches(_expected(artifact), result.events) == []  # type: ignore[arg-type]
    assert {e["data"]["source_id"] for e in result.events} == {source_id}


def test_the_command_refuses_a_channel_before_sending_anything(capsys: pytest.CaptureFixture[str]) -> None:
    from espwire.cli import main

    artifact = ARTIFACTS[0][2]
    assert main(["import", "--source", "sparkpost", "--channel", "ftp", str(artifact)]) == 2
    assert "source sparkpost (sparkpost) has no channel 'ftp'" in capsys.readouterr().err
    assert main(["import", "--source", "nope", "--channel", "ftp", str(artifact)]) == 2
    assert main(["import", "--source", "pure360", "--channel", "ftp", "/nonexistent/file.log"]) == 2
