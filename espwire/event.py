"""The canonical event: one CloudEvents 1.0 (structured JSON) record per real-world event.

Events travel as plain dicts shaped by these TypedDicts, because building a pydantic model per
event would cost more than the rest of the hot path; pydantic validates the same TypedDicts in
tests (``EVENT_ADAPTER``) and exports the JSON Schema kept in ``espwire/schemas/event.schema.json``.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import TypeAdapter
from typing_extensions import TypedDict

EventType = Literal[
    "email.sent",
    "email.delivered",
    "email.deferred",
    "email.bounced",
    "email.rejected",
    "email.opened",
    "email.clicked",
    "email.complained",
    "email.unsubscribed",
    "email.subscribed",
    "sms.status",
    "sms.failed",
    "sms.unsubscribed",
    "campaign.started",
    "campaign.sending",
    "commerce.converted",
    "prompt.impression",
    "prompt.timeout",
    "prompt.dismissed",
    "prompt.declined",
    "prompt.accepted",
    "prompt.goal_completed",
    "prompt.excluded",
    "prompt.holdout",
    "prompt.pipeline_impression",
    "prompt.pipeline_transition",
    "app.page_viewed",
    "app.tracked",
    "app.custom",
    "unknown",
]
EVENT_TYPES: frozenset[str] = frozenset(EventType.__args__)  # type: ignore[attr-defined]

Provider = Literal["sparkpost", "falconide", "ipost", "pure360", "recurly_engage"]
PROVIDERS: tuple[str, ...] = Provider.__args__  # type: ignore[attr-defined]

BounceSeverity = Literal["hard", "soft", "block", "admin", "undetermined"]
# django-anymail's names, so users of that library recognise them.
RejectReason = Literal["invalid", "bounced", "timed_out", "blocked", "spam", "unsubscribed", "other"]
TimeSource = Literal["provider", "received"]


class Recipient(TypedDict, total=False):
    email: str | None
    phone: str | None
    contact_id: str | None
    user_id: str | None
    anonymous_id: str | None


# "from" is a keyword, hence the functional form.
Message = TypedDict(
    "Message",
    {
        "message_id": str | None,
        "transmission_id": str | None,
        "mailing_id": str | None,
        "subject": str | None,
        "from": str | None,
    },
    total=False,
)


class Campaign(TypedDict, total=False):
    id: str | None
    name: str | None


class Link(TypedDict, total=False):
    url: str | None
    name: str | None


class Bounce(TypedDict, total=False):
    severity: BounceSeverity  # as the provider classified it
    inferred_severity: BounceSeverity  # espwire's reading of the reply, when the provider gave none
    category: str | None
    class_code: str | None
    smtp_status: str | None
    enhanced_status: str | None
    reason: str | None


class Client(TypedDict, total=False):
    user_agent: str | None
    ip: str | None
    device: str | None
    os: str | None
    browser: str | None
    email_client: str | None


class EventData(TypedDict):
    provider: Provider
    source_id: str
    request_id: NotRequired[str]  # the gateway's id of the HTTP request it came in, for tracing
    provider_event_type: str
    provider_event_id: str | None
    occurred_at: str | None
    received_at: str
    time_source: TimeSource
    recipient: Recipient
    message: NotRequired[Message]
    campaign: NotRequired[Campaign]
    link: NotRequired[Link]
    bounce: NotRequired[Bounce]
    reject_reason: NotRequired[RejectReason]
    client: NotRequired[Client]
    tags: NotRequired[list[str]]
    metadata: NotRequired[dict[str, Any]]
    # Filled by enrichers (processors/enrich): each is optional and never removes anything.
    geo: NotRequired[dict[str, Any]]
    mailbox_provider: NotRequired[str | None]
    open: NotRequired[dict[str, Any]]
    click: NotRequired[dict[str, Any]]
    campaign_context: NotRequired[dict[str, Any]]
    enrichment_errors: NotRequired[list[str]]
    raw: Any


class CanonicalEvent(TypedDict):
    specversion: Literal["1.0"]
    id: str
    source: str
    type: EventType
    time: str
    subject: NotRequired[str]
    datacontenttype: Literal["application/json"]
    data: EventData


EVENT_ADAPTER: TypeAdapter[CanonicalEvent] = TypeAdapter(CanonicalEvent)


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of the canonical event, as kept in espwire/schemas/event.schema.json."""
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "espwire canonical event (CloudEvents 1.0, structured mode)"
    return schema
