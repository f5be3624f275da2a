"""Files to envelopes: line-oriented files cut at line ends, each channel only for its provider."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from espwire.config import MAX_BODY_BYTES, Settings, SourceConfig
from ingest_gateway.file_import import ImportRefused, envelopes_for, plan_import, read_file, split_lines
from tests.fixture_cases import PROVIDERS_DIR


@pytest.mark.parametrize("limit", [1, 5, 6, 7, 12, 100])
def test_parts_are_cut_after_a_newline_and_give_the_file_back(limit: int) -> None:
    data = b"one\ntwo\nthree\nfour four four\n\nlast-without-newline"
    parts = list(split_lines(data, limit))
    assert b"".join(parts) == data
    for part in parts[:-1]:
        assert part.endswith(b"\n")
        assert len(part) <= limit or part.count(b"\n") == 1  # over the limit only as one whole line


def test_a_file_within_the_limit_is_one_part_and_an_empty_file_none() -> None:
    assert list(split_lines(b"a\nb\n", 100)) == [b"a\nb\n"]
    assert list(split_lines(b"", 100)) == []


def test_ftp_log_becomes_envelopes_of_its_channel_with_the_source_zone(tmp_path: Path) -> None:
    source = SourceConfig(id="p360", provider="pure360", timezone="Europe/London")
    data = b"".join(b'"type:OPEN","email:a%d@example.com"\n' % i for i in range(1000))
    [envelope] = envelopes_for(source, "ftp", tmp_path / "events.log", data)
    assert (envelope.source_id, envelope.provider, envelope.method) == ("p360", "pure360", "IMPORT")
    assert envelope.body == data
    assert envelope.options == {"channel": "ftp", "file": "events.log", "timezone": "Europe/London"}


def test_large_line_files_are_parts_numbered_in_order(tmp_path: Path) -> None:
    source = SourceConfig(id="engage", provider="recurly_engage")
    data = b"".join(b'{"event":"Impression","user_id":"%04d"}\n' % i for i in range(100))
    envelopes = envelopes_for(source, "s3", tmp_path / "usages.json", data, part_bytes=1000)
    assert len(envelopes) > 1
    assert [e.options["part"] for e in envelopes] == list(range(len(envelopes)))
    assert b"".join(e.body for e in envelopes) == data
    assert len({e.request_id for e in envelopes}) == len(envelopes)


def test_a_channel_the_provider_does_not_have_is_refused_naming_the_ones_it_has(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match=r"has no channel 's3'; it has \['ftp', 'soap'\]"):
        envelopes_for(SourceConfig(id="p", provider="pure360"), "s3", tmp_path / "x", b"{}\n")
    with pytest.raises(ImportRefused, match=r"it has \[\]"):
        envelopes_for(SourceConfig(id="sp", provider="sparkpost"), "ftp", tmp_path / "x", b"x\n")


def test_a_soap_response_is_one_record_and_refused_over_the_body_limit(tmp_path: Path) -> None:
    source = SourceConfig(id="p", provider="pure360")
    [envelope] = envelopes_for(source, "soap", tmp_path / "r.xml", b"<a>\n<b/>\n</a>\n")
    assert envelope.content_type == "text/xml" and "part" not in envelope.options
    with pytest.raises(ImportRefused, match="more than"):
        envelopes_for(source, "soap", tmp_path / "big.xml", b"<a>" + b" " * MAX_BODY_BYTES + b"</a>")


def test_a_gzip_export_is_imported_as_its_content_and_a_broken_one_refused(tmp_path: Path) -> None:
    export = (PROVIDERS_DIR / "recurly_engage" / "s3" / "usages-2026-11-20T00-00-00.json").read_bytes()
    settings = Settings(sources=[SourceConfig(id="engage", provider="recurly_engage")])
    plain, packed, two_members = tmp_path / "a.json", tmp_path / "a.json.gz", tmp_path / "b"
    plain.write_bytes(export)
    packed.write_bytes(gzip.compress(export))
    half = len(export) // 2
    two_members.write_bytes(gzip.compress(export[:half]) + gzip.compress(export[half:]))
    bodies = [[e.body for e in plan_import(settings, "engage", "s3", [p])] for p in (plain, packed, two_members)]
    assert bodies == [[export]] * 3
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(export)[:-12])
    with pytest.raises(ImportRefused, match=r"broken\.gz: unreadable gzip"):
        plan_import(settings, "engage", "s3", [broken])


def test_a_gzip_bomb_is_refused_past_the_inflated_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b"\n" * 5_000_000))
    with pytest.raises(ImportRefused, match="too large inflated"):
        read_file(bomb, max_inflated=1_000_000)
    assert read_file(bomb, max_inflated=5_000_000) == b"\n" * 5_000_000
