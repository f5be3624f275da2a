"""The spool keeps fsync'ed records in order and never republishes a torn one."""

from __future__ import annotations

from pathlib import Path

import pytest

from espwire.envelope import Envelope
from ingest_gateway.spool import Spool, SpoolFull, read_segment


def _envelope(n: int) -> Envelope:
    return Envelope(
        "sparkpost", "sparkpost", f"req-{n}", "2026-11-24T00:00:00Z", "POST", "application/json", b'[{"n":%d}]' % n
    )


async def test_records_come_back_in_order_and_torn_tail_is_skipped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "slot-0", max_bytes=1 << 20)
    spool.open()
    for n in range(5):
        await spool.append(_envelope(n))
    await spool.close()
    [segment] = spool.segments()
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # a crash in the middle of the last write

    scan = read_segment(segment)
    assert [e.request_id for e in scan.envelopes] == ["req-0", "req-1", "req-2", "req-3"]
    assert scan.envelopes[2].body == b'[{"n":2}]'
    assert scan.torn_bytes > 0

    reopened = Spool(tmp_path / "slot-0", max_bytes=1 << 20)
    reopened.open()
    published: list[str] = []

    async def publish(envelopes: list[Envelope]) -> None:
        published.extend(e.request_id for e in envelopes)

    assert await reopened.drain(publish) == 4
    assert published == ["req-0", "req-1", "req-2", "req-3"]
    assert reopened.is_empty()
    await reopened.close()


async def test_corrupt_crc_stops_the_segment(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1 << 20)
    spool.open()
    for n in range(3):
        await spool.append(_envelope(n))
    await spool.close()
    [segment] = spool.segments()
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF  # flip a byte inside the last record's body
    segment.write_bytes(bytes(data))
    assert [e.request_id for e in read_segment(segment).envelopes] == ["req-0", "req-1"]


async def test_full_spool_refuses_and_slots_are_exclusive(tmp_path: Path) -> None:
    spool = Spool.claim_slot(tmp_path, max_bytes=300, segment_bytes=1 << 20)
    other = Spool.claim_slot(tmp_path, max_bytes=300, segment_bytes=1 << 20)
    assert spool.directory != other.directory
    spool.open()
    with pytest.raises(SpoolFull):
        for n in range(10):
            await spool.append(_envelope(n))
    assert not spool.has_room
    await spool.close()
    await other.close()
