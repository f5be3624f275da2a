"""Realistic webhook requests, in the shapes of the provider fixtures (tests/data/providers/*).

Deterministic (seeded) so two runs post the same bytes. The mix is the one a busy ESP account
produces: SparkPost batches of 1, 100 and 350 events (mostly deliveries and opens, some clicks, few
bounces and complaints), Falconide batches, single iPost objects (with the bare leading-zero
``mailing_id`` iPost really sends), Pure360 forms and Recurly Engage arrays, plus a share of
redeliveries (the same request again, as SparkPost does when it did not get its 200 in time).
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import orjson

from espwire.envelope import Envelope

SPARKPOST_TOKEN = "sp-test-token"
IPOST_BASIC = "Basic " + base64.b64encode(b"ipost-user:ipost-pass").decode()
RECURLY_KEY = "re-test-key"

FIRST = ["alice", "bob", "carla", "dev", "erin", "femi", "gita", "hana", "ivan", "june", "kofi", "lena", "marco"]
LAST = ["moreau", "okafor", "diaz", "patel", "ng", "adeyemi", "rao", "sato", "petrov", "kim", "mensah", "fischer"]
DOMAINS = [
    ("gmail.com", 40),
    ("yahoo.com", 12),
    ("outlook.com", 10),
    ("hotmail.com", 8),
    ("icloud.com", 10),
    ("aol.com", 2),
    ("gmx.de", 3),
    ("orange.fr", 2),
    ("mail.example.org", 8),
    ("corp.example.com", 5),
]
USER_AGENTS = [
    # Gmail image proxy, Apple Mail Privacy Protection, Outlook, phones and desktops.
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
]
CITIES = [
    ("US", "OR", "Portland", 45.5235, -122.6762),
    ("US", "NY", "New York", 40.7128, -74.006),
    ("GB", "ENG", "London", 51.5072, -0.1276),
    ("DE", "BE", "Berlin", 52.52, 13.405),
    ("IN", "KA", "Bengaluru", 12.9716, 77.5946),
]
CAMPAIGNS = ["winter-welcome", "cart-rescue-nov", "black-friday-2026", "weekly-digest-48", "price-drop-alerts"]
# SparkPost: mostly deliveries and opens, some clicks, few bounces and complaints.
SPARKPOST_TYPES = [
    ("delivery", 42),
    ("injection", 8),
    ("open", 22),
    ("initial_open", 8),
    ("click", 12),
    ("delay", 2),
    ("bounce", 3),
    ("out_of_band", 1),
    ("spam_complaint", 1),
    ("list_unsubscribe", 1),
]
BOUNCE_CLASSES = ["10", "10", "21", "22", "25", "30", "50", "51", "52", "1"]
FALCONIDE_EVENTS = [("sent", 40), ("opened", 30), ("clicked", 15), ("bounced", 8), ("unsubscribed", 4), ("abuse", 3)]
IPOST_EVENTS = [
    ("open", 40),
    ("click", 20),
    ("send", 25),
    ("bounce", 8),
    ("optout", 4),
    ("complaint", 1),
    ("conversion", 2),
]
PURE360_TYPES = [
    ("OPEN", 45),
    ("CLICK", 25),
    ("BOUNCE", 8),
    ("SOFTBOUNCE", 6),
    ("OPTOUT", 5),
    ("OPTIN", 5),
    ("BLOCKED", 2),
]
RECURLY_EVENTS = [
    ("Impression", "prompt", 40),
    ("Click", "prompt", 12),
    ("Dismiss", "prompt", 15),
    ("Decline", "prompt", 5),
    ("Timeout", "prompt", 5),
    ("Home Page", "page", 15),
    ("Video Started", "custom", 5),
    ("Pipeline_Transition", "prompt", 3),
]


@dataclass(frozen=True, slots=True)
class Request:
    """One webhook POST as a provider sends it."""

    source_id: str
    provider: str
    body: bytes
    headers: dict[str, str]
    events: int
    remote_addr: str = "127.0.0.1"
    redelivery: bool = False
    tags: tuple[str, ...] = field(default=())

    @property
    def path(self) -> str:
        return f"/hooks/{self.source_id}"

    def envelope(self, received_at: str | None = None) -> Envelope:
        """The envelope the gateway would put on <prefix>.raw for this request."""
        kept = {k.lower(): v for k, v in self.headers.items() if k.lower() in ("content-type", "user-agent")}
        batch_id = self.headers.get("X-MessageSystems-Batch-ID")
        if batch_id:
            kept["x-messagesystems-batch-id"] = batch_id
        return Envelope(
            source_id=self.source_id,
            provider=self.provider,
            request_id=uuid.uuid4().hex,
            received_at=received_at or datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            method="POST",
            content_type=self.headers.get("Content-Type", ""),
            body=self.body,
            headers=kept,
            remote_addr=self.remote_addr,
        )


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


class LoadGen:
    def __init__(self, seed: int = 20261120) -> None:
        self.rng = random.Random(seed)
        self.base_ts = 1795161600  # 2026-11-20T08:00:00Z, the fixtures' day
        self._seq = 0

    # -- building blocks ------------------------------------------------------------------------
    def _id(self, digits: int = 18) -> str:
        return str(self.rng.randrange(10 ** (digits - 1), 10**digits))

    def address(self) -> str:
        rng = self.rng
        domain = _pick(rng, DOMAINS)
        return f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randrange(1, 9999)}@{domain}"

    def _ts(self) -> int:
        self._seq += 1
        return self.base_ts + self._seq // 3

    # -- SparkPost ------------------------------------------------------------------------------
    def sparkpost_event(self, event_type: str | None = None, event_id: str | None = None) -> dict[str, object]:
        rng = self.rng
        kind = event_type or _pick(rng, SPARKPOST_TYPES)
        campaign = rng.choice(CAMPAIGNS)
        rcpt = self.address()
        ts = self._ts()
        ev: dict[str, object] = {
            "type": kind,
            "campaign_id": campaign,
            "customer_id": "40211",
            "event_id": event_id or self._id(),
            "friendly_from": "news@shop.example.com",
            "message_id": uuid.UUID(int=rng.getrandbits(128)).hex[:20],
            "rcpt_meta": {"crm_id": str(rng.randrange(1000, 999999))},
            "rcpt_tags": ["newsletter", f"tier-{rng.randrange(0, 3)}"],
            "rcpt_to": rcpt,
            "raw_rcpt_to": rcpt,
            "template_id": f"tmpl-{campaign}",
            "template_version": str(rng.randrange(1, 6)),
            # SparkPost sends numeric strings mostly; integers appear in track events.
            "timestamp": ts if kind in ("open", "initial_open") and rng.random() < 0.5 else str(ts),
            "transmission_id": self._id(),
            "injection_time": datetime.fromtimestamp(ts - rng.randrange(5, 600), UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"
            ),
        }
        if kind in ("open", "initial_open", "click"):
            country, region, city, lat, lon = rng.choice(CITIES)
            ev["ip_address"] = f"198.51.100.{rng.randrange(1, 255)}"
            ev["user_agent"] = rng.choice(USER_AGENTS)
            ev["geo_ip"] = {"country": country, "region": region, "city": city, "latitude": lat, "longitude": lon}
            if kind == "click":
                ev["target_link_name"] = "Shop now"
                ev["target_link_url"] = f"https://shop.example.com/sale?c={campaign}&i={rng.randrange(1, 20)}"
            cls = "track_event"
        elif kind == "list_unsubscribe":
            ev["mailfrom"] = "bounces@shop.example.com"
            cls = "unsubscribe_event"
        else:
            ev.update(
                {
                    "msg_from": "bounces@shop.example.com",
                    "subaccount_id": "12",
                    "ip_pool": "marketing-pool",
                    "delv_method": "esmtp",
                    "num_retries": "0",
                }
            )
            if kind in ("delivery", "delay"):
                ev.update(
                    {
                        "ip_address": f"192.0.2.{rng.randrange(1, 255)}",
                        "queue_time": str(rng.randrange(200, 20000)),
                        "outbound_tls": "1",
                        "mailbox_provider": "Gmail",
                        "mailbox_provider_region": "Global",
                        "sending_ip": "192.0.2.187",
                    }
                )
            if kind in ("bounce", "out_of_band", "delay"):
                ev.update(
                    {
                        "bounce_class": rng.choice(BOUNCE_CLASSES),
                        "error_code": "550",
                        "raw_reason": f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
                        "reason": "550 5.1.1 <...@...>: Recipient address rejected: User unknown",
                    }
                )
            if kind == "spam_complaint":
                ev.update({"fbtype": "abuse", "report_by": "fbl.mailbox.example", "report_to": "fbl@shop.example.com"})
            cls = "message_event"
        return {"msys": {cls: ev}}

    def sparkpost(self, n: int) -> Request:
        body = orjson.dumps([self.sparkpost_event() for _ in range(n)])
        headers = {
            "Content-Type": "application/json",
            "X-MessageSystems-Webhook-Token": SPARKPOST_TOKEN,
            "X-MessageSystems-Batch-ID": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "User-Agent": "SparkPost",
        }
        return Request("sparkpost", "sparkpost", body, headers, n)

    # -- Falconide ------------------------------------------------------------------------------
    def falconide(self, n: int) -> Request:
        rng = self.rng
        events = []
        for _ in range(n):
            kind = _pick(rng, FALCONIDE_EVENTS)
            ts = self._ts()
            ev: dict[str, object] = {
                "TRANSID": self._id(17),
                "RCPTID": str(rng.randrange(0, 3)),
                "EMAIL": self.address(),
                "EVENT": kind,
                "TIMESTAMP": str(ts) if rng.random() < 0.8 else ts,
                "X-APIHEADER": f"ACC{rng.randrange(0, 99999):05d}",
                "SUBJECT": "Your order has shipped",
                "FROMADDRESS": "info@shop.example.com",
                "TAGS": "TAG2026-Nov-20",
                "CLIENTID": str(rng.randrange(1000, 2000)),
                "MSIZE": str(rng.randrange(1500, 90000)),
            }
            if kind == "sent":
                ev["RESPONSE"] = f"smtp;250 2.0.0 OK {ts} {uuid.UUID(int=rng.getrandbits(128)).hex[:10]} - gsmtp"
            elif kind in ("opened", "clicked"):
                ev["USERAGENT"] = rng.choice(USER_AGENTS)
                ev["IPADDRESS"] = f"203.0.113.{rng.randrange(1, 255)}"
                if kind == "clicked":
                    ev["URL"] = f"https://shop.example.com/track/{rng.randrange(1, 99)}?utm_source=email"
            elif kind == "bounced":
                hard = rng.random() < 0.6
                ev.update(
                    {
                        "RESPONSE": "550 5.1.1 The email account that you tried to reach does not exist",
                        "BOUNCE_TYPE": "HARDBOUNCE" if hard else "SOFTBOUNCE",
                        "BOUNCE_REASON": "550 5.1.1 The email account does not exist" if hard else "Mailbox full",
                        "BOUNCE_REASONID": 342 if hard else 77,
                    }
                )
            events.append(ev)
        return Request("falconide", "falconide", orjson.dumps(events), {"Content-Type": "application/json"}, n)

    # -- iPost: one pretty-printed object per request, mailing_id a bare leading-zero number ----------
    def ipost(self) -> Request:
        rng = self.rng
        kind = _pick(rng, IPOST_EVENTS)
        props: list[str] = [f'"mailing_id": {rng.randrange(1, 999):06d}', '"campaign_name": "Offer Email"']
        if kind in ("open", "click"):
            props += ['"device": "mobile"', '"operating_system": "ios"', '"browser": "Safari"']
            props.append('"email_client": "Apple Mail"')
        if kind == "click":
            props += ['"click_link_name": "Offer"', '"click_link_content": "https://shop.example.com/offer"']
        if kind == "bounce":
            props.append(f'"bounce_type": "{rng.choice(["hard", "soft"])}"')
        if kind == "conversion":
            props += ['"conversion_type": "order"', f'"order_id": "A{rng.randrange(1, 99999)}"']
            props.append(f'"order_grand_total": "{rng.randrange(5, 500)}.{rng.randrange(0, 99):02d}"')
        when = datetime.fromtimestamp(self._ts(), UTC).strftime("%Y-%m-%d %H:%M:%S")
        contact = (
            '  "contact": {\n'
            f'    "email": "{self.address()}",\n'
            f'    "mobile": "555-{rng.randrange(0, 999):03d}-{rng.randrange(0, 9999):04d}",\n'
            f'    "contact_id": "{rng.randrange(1000, 99999)}"\n'
            "  }\n"
        )
        body = (
            "{\n"
            f'  "event_name": "{kind}",\n'
            f'  "event_time": "{when}",\n'
            '  "event_properties": {\n    ' + ",\n    ".join(props) + "\n  },\n" + contact + "}"
        )
        headers = {"Content-Type": "application/json", "Authorization": IPOST_BASIC}
        return Request("ipost", "ipost", body.encode(), headers, 1)

    # -- Pure360: one flat PHP-style form per notification ----------------------------------------
    def pure360(self) -> Request:
        rng = self.rng
        kind = _pick(rng, PURE360_TYPES)
        ts = self._ts()
        first = rng.choice(FIRST)
        fields: list[tuple[str, str]] = [
            ("type", kind),
            ("Event_date", str(ts)),
            (rng.choice(["email", "Email", "EMAIL"]), self.address()),
            ("mobile", f"4477009{rng.randrange(0, 99999):05d}"),
            ("messageName", "NOV-2026-Deals"),
            ("deliveryDate", str(ts - 3600)),
            ("Delivery_ID", str(rng.randrange(980000, 990000))),
        ]
        if kind in ("OPEN", "CLICK"):
            fields += [("device_type", "mobileBrowser"), ("device_OS", "iOS"), ("device_Browser", "Safari")]
        if kind == "CLICK":
            fields += [("Click_Url", "https://shop.example.com/p/8?src=pure360&x=1"), ("Click_Name", "Main CTA")]
        fields += [("firstName", first.title()), ("lastName", "Tester"), ("notificationSubject", "Do Not Miss Out")]
        body = urlencode(fields).encode()
        return Request("pure360", "pure360", body, {"Content-Type": "application/x-www-form-urlencoded"}, 1)

    # -- Recurly Engage: JSON arrays -------------------------------------------------------------------
    def recurly_engage(self, n: int) -> Request:
        rng = self.rng
        events = []
        for _ in range(n):
            name, kind, _w = rng.choices(RECURLY_EVENTS, weights=[e[2] for e in RECURLY_EVENTS])[0]
            ev: dict[str, object] = {
                "app_id": "74f72649-0327-4911-bd21-a4cd533cec1c",
                "user_id": f"u-{rng.randrange(0, 99999):05d}",
                "anonymous_user_id": uuid.UUID(int=rng.getrandbits(128)).hex[:24],
                "event": name,
                "platform": rng.choice(["web", "ios", "android", "redfast"]),
                "type": kind,
                "ts": self._ts(),
                "traits": {"plan": rng.choice(["basic", "premium"]), "country": "US"},
            }
            if kind == "prompt":
                ev["properties"] = {
                    "path_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "path_name": "Annual upgrade offer",
                    "action_group_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "zone": "banner",
                }
            else:
                ev["properties"] = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "values": [{"url_path": "/"}]}
            events.append(ev)
        headers = {"Content-Type": "application/json", "x-api-key": RECURLY_KEY}
        return Request("recurly_engage", "recurly_engage", orjson.dumps(events), headers, n)

    # -- the mix -------------------------------------------------------------------------------------
    def mixed(self, redelivery_share: float = 0.03) -> Iterator[Request]:
        """An endless realistic request stream (weights are per request, not per event)."""
        rng = self.rng
        recent: list[Request] = []
        makers: list[tuple[Callable[[], Request], int]] = [
            (lambda: self.sparkpost(1), 18),
            (lambda: self.sparkpost(100), 10),
            (lambda: self.sparkpost(350), 4),
            (lambda: self.falconide(rng.randrange(1, 60)), 12),
            (self.ipost, 26),
            (self.pure360, 20),
            (lambda: self.recurly_engage(rng.randrange(1, 25)), 10),
        ]
        funcs = [m[0] for m in makers]
        weights = [m[1] for m in makers]
        while True:
            if recent and rng.random() < redelivery_share:
                again = rng.choice(recent)
                yield Request(again.source_id, again.provider, again.body, again.headers, again.events, redelivery=True)
                continue
            request = rng.choices(funcs, weights=weights)[0]()
            recent.append(request)
            if len(recent) > 50:
                recent.pop(0)
            yield request

    def mixed_batch(self, *, events: int, redelivery_share: float = 0.03) -> list[Request]:
        """Requests of the mix until they hold at least ``events`` events."""
        out: list[Request] = []
        total = 0
        for request in self.mixed(redelivery_share):
            out.append(request)
            total += request.events
            if total >= events:
                return out
        raise AssertionError("unreachable")

    def sparkpost_single_1kb(self, event_id: str | None = None) -> bytes:
        """A SparkPost batch of one delivery event, padded to 1 KB with recipient metadata: the gateway's body."""
        event = self.sparkpost_event("delivery", event_id)
        meta: dict[str, str] = event["msys"]["message_event"]["rcpt_meta"]  # type: ignore[index]
        meta["segment"] = ""
        size = len(orjson.dumps([event]))
        meta["segment"] = "loyal-customers-" + "x" * max(0, 1024 - size - 16)
        return orjson.dumps([event])


def describe(requests: list[Request]) -> dict[str, object]:
    by_provider: dict[str, dict[str, int]] = {}
    for r in requests:
        entry = by_provider.setdefault(r.provider, {"requests": 0, "events": 0, "bytes": 0})
        entry["requests"] += 1
        entry["events"] += r.events
        entry["bytes"] += len(r.body)
    return {
        "requests": len(requests),
        "events": sum(r.events for r in requests),
        "bytes": sum(len(r.body) for r in requests),
        "redeliveries": sum(r.redelivery for r in requests),
        "by_provider": by_provider,
    }


if __name__ == "__main__":  # a look at the mix
    t0 = time.perf_counter()
    sample = LoadGen().mixed_batch(events=20_000)
    print(orjson.dumps(describe(sample), option=orjson.OPT_INDENT_2).decode())
    print(f"generated in {time.perf_counter() - t0:.2f}s; 1 KB body = {len(LoadGen().sparkpost_single_1kb())} bytes")
