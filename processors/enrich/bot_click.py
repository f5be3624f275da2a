"""Tells scanner clicks from human ones on ``email.clicked``: ``data.click = {bot, reason}``.

Rules, first match wins: a scanner or automation user agent; a scanner's network (configured AS
numbers, or AS organisations of mail-security vendors from ``data.geo``, so geoip runs first); a click
within ``bot_click_seconds_after_delivery`` of the message's delivery, before it as well as after it (a
mail gateway scans the links while it accepts the message, so its clicks may be stamped a few seconds
before the delivery that its acceptance completes); two or more distinct links of
one message clicked within the same second. Timing state (delivery times, clicks per second) lives in
the dedupe store backend, one ``note_message_events`` round trip per batch; deliveries record their time.
Guarantees: every click gets ``data.click``; when the store fails, the agent and network rules still
apply and the event carries a note in ``data.enrichment_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from espwire.clock import parse_utc
from processors.dedupe.backoff import StoreBackoff
from processors.dedupe.base import MessageEvent, MessageState
from processors.enrich import metrics
from processors.enrich.base import Event, note_error, per_event_failure
from processors.enrich.known_agents import SCANNER_NETWORKS, match_table, scanner_agent

TIMING_KINDS = {"email.delivered": "delivered", "email.clicked": "clicked"}
_EPOCHS: dict[str, float | None] = {}
_EPOCHS_KEPT = 16_384


class MessageStateStore(Protocol):
    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]: ...


def message_key(data: dict[str, Any]) -> str | None:
    """One sent message to one recipient, across its delivery and click events."""
    message = data.get("message") or {}
    recipient = (data.get("recipient") or {}).get("email") or ""
    ident = message.get("message_id")
    if not ident:
        ident = message.get("transmission_id") or message.get("mailing_id")
        if not ident or not recipient:
            return None
    return f"{data['provider']}:{data['source_id']}:{ident}:{recipient.lower()}"


def event_epoch(event: Event) -> float | None:
    data = event["data"]
    moment = data.get("occurred_at") or event.get("time") or data.get("received_at")
    if not isinstance(moment, str):
        return None
    # The events of a batch share their seconds: each time text is parsed once (a bounded memo).
    try:
        return _EPOCHS[moment]
    except KeyError:
        pass
    if len(_EPOCHS) >= _EPOCHS_KEPT:
        _EPOCHS.clear()
    try:
        epoch = parse_utc(moment).timestamp()
    except ValueError:
        epoch = None
    _EPOCHS[moment] = epoch
    return epoch


class BotClickEnricher:
    name = "bot_click"

    def __init__(
        self,
        store: MessageStateStore | None,
        *,
        seconds_after_delivery: float = 10.0,
        state_ttl_seconds: float = 24 * 3600.0,
        scanner_asns: Iterable[int] = (),
    ) -> None:
        self._store = store
        self._after_delivery = seconds_after_delivery
        self._ttl = state_ttl_seconds
        self._scanner_asns = frozenset(scanner_asns)
        self._backoff = StoreBackoff()

    def _static_rules(self, data: dict[str, Any]) -> str | None:
        client = data.get("client") or {}
        agent = client.get("user_agent")
        if isinstance(agent, str) and agent:
            reason = scanner_agent(agent)
            if reason is not None:
                return reason
        geo = data.get("geo") or {}
        asn = geo.get("asn")
        if asn is not None and asn in self._scanner_asns:
            return f"scanner_network:AS{asn}"
        as_org = geo.get("as_org")
        if isinstance(as_org, str) and as_org:
            network = match_table(as_org, SCANNER_NETWORKS)
            if network:
                return f"scanner_network:{network}"
        return None

    def _timing_skipped(self, timed: list[tuple[Event, float]], why: BaseException | str) -> None:
        """Store down: the clicks keep their agent/network verdict; the note says timing was not checked."""
        clicks = [event for event, _ in timed if event["type"] == "email.clicked"]
        metrics.ENRICH_ERRORS.labels(self.name).inc(len(clicks))
        for event in clicks:
            note_error(event, self.name, f"timing rules skipped: {why}")

    def _timing_rule(self, moment: float, state: MessageState) -> str | None:
        if state.delivered_at is not None and abs(moment - state.delivered_at) <= self._after_delivery:
            return "click_soon_after_delivery"
        if state.links_in_same_second >= 2:
            return "links_clicked_same_second"
        return None

    async def enrich_batch(self, events: list[Event]) -> None:
        timed: list[tuple[Event, float]] = []
        items: list[MessageEvent] = []
        for event in events:
            kind = TIMING_KINDS.get(event["type"])
            if kind is None:
                continue
            data = event["data"]
            try:
                if kind == "clicked":
                    reason = self._static_rules(data)
                    data["click"] = {"bot": reason is not None, "reason": reason}
                if self._store is None:
                    continue
                key = message_key(data)
                moment = event_epoch(event)
                if key is None or moment is None:
                    continue
                link = (data.get("link") or {}).get("url") or (data.get("link") or {}).get("name") or ""
                items.append((key, "clicked" if kind == "clicked" else "delivered", moment, link))
                timed.append((event, moment))
            except Exception as exc:
                per_event_failure(self.name, event, exc)
        if not items or self._store is None:
            return
        if not self._backoff.may_try():  # failed a moment ago: not another client timeout per batch
            self._timing_skipped(timed, "store down a moment ago, not tried")
            return
        try:
            states = await self._store.note_message_events(items, self._ttl)
        except Exception as exc:
            self._backoff.failed()
            self._timing_skipped(timed, exc)
            return
        self._backoff.succeeded()
        for (event, moment), state in zip(timed, states, strict=True):
            click = event["data"].get("click")
            if click is None or click["bot"]:
                continue
            reason = self._timing_rule(moment, state)
            if reason is not None:
                click["bot"] = True
                click["reason"] = reason
