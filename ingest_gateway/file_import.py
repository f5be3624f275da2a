"""Files a provider makes available instead of posting (Pure360's FTP log and SOAP getBatch responses,
Recurly Engage's S3 usage exports) put on espwire.raw, as the gateway puts a webhook.

Each file becomes one or more envelopes with ``options["channel"]`` naming its format, so the processors
read it with that channel's parser (``processors.adapters.CHANNELS``) and everything after (dedupe,
enrichment, sinks) is the same as for webhooks. A later pull source produces the same envelopes.

Decisions:
- Line-oriented files (FTP logs, S3 exports) are cut at line ends into parts of at most
  ``PART_BYTES``, so a day's log of any size fits Kafka's records; a line is never split. Events get the
  same ids whatever the cut (ids come from each line's content), so importing a file twice, or a part
  of it again, gives duplicates that dedupe removes.
- A SOAP response is one XML document: it is one record, refused when over the body limit.
- The command returns only after the broker acknowledged every record (acks=all): when it says a file
  is imported, it is on espwire.raw.
- A gzip file (known by its first bytes, not its name: exports and rotated logs are often kept
  compressed) is imported as its content, as the gateway keeps a gzip body inflated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer

from espwire.clock import utc_now
from espwire.config import MAX_BODY_BYTES, Settings, SourceConfig
from espwire.envelope import Envelope, new_request_id
from espwire.topics import MAX_RECORD_BYTES, Topics, ensure_topics
from ingest_gateway.limits import RequestRefused, decode_body
from processors.adapters import CHANNELS

PART_BYTES = 8 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
# A gzip file is inflated in memory, as a plain file is read whole: a bomb stops here.
MAX_INFLATED_BYTES = 4 * 1024**3
# Which provider has which channel is the processors' table (CHANNELS); here, per channel, whether its
# file is cut at line ends, and the content type recorded.
_FORMATS: dict[str, tuple[bool, str]] = {
    "ftp": (True, "text/plain"),
    "soap": (False, "text/xml"),
    "s3": (True, "application/x-ndjson"),
}


class ImportRefused(Exception):
    """The file cannot be imported as asked (unknown source, wrong channel, too large); nothing was sent."""


def split_lines(data: bytes, limit: int = PART_BYTES) -> Iterator[bytes]:
    """``data`` in parts of at most ``limit`` bytes cut after a newline; a longer line is a part alone."""
    start = 0
    while start < len(data):
        end = start + limit
        if end >= len(data):
            yield data[start:]
            return
        cut = data.rfind(b"\n", start, end)
        if cut < start:  # one line longer than the limit: it goes whole, up to its own end
            cut = data.find(b"\n", end)
            if cut < 0:
                yield data[start:]
                return
        yield data[start : cut + 1]
        start = cut + 1


def envelopes_for(
    source: SourceConfig, channel: str, path: Path, data: bytes, *, part_bytes: int = PART_BYTES
) -> list[Envelope]:
    """The envelopes of one file; raises ImportRefused when the source has no such channel or it is too large."""
    have = sorted(CHANNELS.get(source.provider, {}))
    if channel not in have:
        raise ImportRefused(f"source {source.id} ({source.provider}) has no channel {channel!r}; it has {have}")
    by_lines, content_type = _FORMATS[channel]
    parts = list(split_lines(data, part_bytes)) if by_lines else [data]
    if any(len(part) > MAX_BODY_BYTES for part in parts):
        raise ImportRefused(f"{path.name}: a record of more than {MAX_BODY_BYTES} bytes (one line or one document)")
    options: dict[str, object] = {"channel": channel, "file": path.name}
    if source.timezone != "UTC":
        options["timezone"] = source.timezone
    return [
        Envelope(
            source_id=source.id,
            provider=source.provider,
            request_id=new_request_id(),
            received_at=utc_now(),
            method="IMPORT",
            content_type=content_type,
            body=part,
            options={**options, "part": index} if len(parts) > 1 else dict(options),
        )
        for index, part in enumerate(parts)
    ]


def plan_import(settings: Settings, source_id: str, channel: str, paths: Sequence[Path]) -> list[Envelope]:
    """Every file's envelopes, in order; raises ImportRefused (or OSError) before anything is sent."""
    source = next((s for s in settings.sources if s.id == source_id), None)
    if source is None:
        raise ImportRefused(f"no source {source_id!r} in the configuration")
    return [e for path in paths for e in envelopes_for(source, channel, path, read_file(path))]


def read_file(path: Path, max_inflated: int = MAX_INFLATED_BYTES) -> bytes:
    """The file's bytes, inflated when it is gzip (every member of it, in bounded steps as the gateway
    inflates a body); ImportRefused when it is broken or inflates past ``max_inflated``."""
    data = path.read_bytes()
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return decode_body(data, "gzip", max_inflated)
    except RequestRefused as refused:
        raise ImportRefused(f"{path.name}: unreadable gzip, or too large inflated ({refused.reason})") from None


async def import_files(settings: Settings, bootstrap: str, envelopes: Sequence[Envelope]) -> None:
    """Puts the envelopes on espwire.raw; returns once the broker acknowledged every one."""
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(bootstrap, topics.core(), settings.kafka.partitions, settings.kafka.replication)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=f"{settings.kafka.client_id}-import",
        acks="all",
        enable_idempotence=False,  # Tansu refuses it; dedupe downstream covers a retried send
        max_request_size=MAX_RECORD_BYTES,
        compression_type=settings.kafka.compression,
    )
    await producer.start()
    try:
        for envelope in envelopes:  # one at a time: a part is up to 8 MiB
            await producer.send_and_wait(topics.raw, envelope.body, key=envelope.key, headers=envelope.kafka_headers())
    finally:
        await producer.stop()
