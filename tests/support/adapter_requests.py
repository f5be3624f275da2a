"""One provider request as an adapter sees it, and what every adapter test checks of the result."""

from __future__ import annotations

from typing import Any

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters.base import Adapter, AdaptResult
from tests.support.adapter_properties import assert_well_formed

RECEIVED = "2026-11-24T00:00:00Z"


def request(
    provider: str,
    body: bytes | str = b"",
    *,
    source_id: str | None = None,
    content_type: str = "application/json",
    method: str = "POST",
    query: str = "",
    remote_addr: str | None = None,
    options: dict[str, Any] | None = None,
) -> Envelope:
    return Envelope(
        source_id=source_id or provider,
        provider=provider,
        request_id="r1",
        received_at=RECEIVED,
        method=method,
        content_type=content_type,
        body=body.encode() if isinstance(body, str) else body,
        remote_addr=remote_addr,
        query=query,
        options=options or {},
    )


def adapted(adapter: Adapter, envelope: Envelope) -> AdaptResult:
    """The adapter's result, every event valid and publishable as it is, every failure with a reason."""
    result = adapter.adapt(envelope)
    assert_well_formed(result)
    return result


def only(result: AdaptResult) -> CanonicalEvent:
    assert result.failures == []
    (single,) = result.events
    return single


def summary(event: CanonicalEvent) -> tuple[str, str | None, str | None, str]:
    data = event["data"]
    return event["type"], event.get("subject"), data["occurred_at"], data["provider_event_type"]


def email_summaries(result: AdaptResult) -> list[tuple[str, str | None, str | None, str]]:
    return [
        (e["type"], e["data"]["recipient"].get("email"), e["data"].get("occurred_at"), e["data"]["provider_event_type"])
        for e in result.events
    ]


BOUNDARY = "------------------------d74496d66958873e"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(fields: list[tuple[str, str]], newline: bytes = b"\r\n", extra: bytes = b"") -> bytes:
    """A multipart/form-data body as PHP's curl writes it for CURLOPT_POSTFIELDS given an array."""
    delimiter = b"--" + BOUNDARY.encode()
    parts = [
        delimiter + newline + f'Content-Disposition: form-data; name="{name}"'.encode() + newline * 2 + value.encode()
        for name, value in fields
    ]
    return newline.join(parts) + newline + extra + delimiter + b"--" + newline
