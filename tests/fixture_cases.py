"""The provider fixture cases (tests/data/providers, copied from shared/fixtures) and how to check them."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from espwire.envelope import Envelope

PROVIDERS_DIR = Path(__file__).parent / "data" / "providers"
PROVIDER_NAMES = ("sparkpost", "falconide", "ipost", "pure360", "recurly_engage")


@dataclass(frozen=True)
class Case:
    folder: str
    name: str
    meta: dict[str, Any]
    body_path: Path

    @property
    def id(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def provider(self) -> str:
        return str(self.meta["provider"])

    @property
    def body(self) -> bytes:
        if not self.body_path.exists() and "body_generator" in self.meta:
            subprocess.run([sys.executable, self.meta["body_generator"]], cwd=self.body_path.parent, check=True)
        return self.body_path.read_bytes()

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.meta.get("headers") or {})

    @property
    def expect_events(self) -> list[dict[str, Any]]:
        return list(self.meta["expect_events"])

    def envelope(self, request_id: str = "r1", received_at: str = "2026-11-24T00:00:00Z") -> Envelope:
        """The envelope a gateway would have made of this request (source named after the provider)."""
        return Envelope(
            source_id=self.provider,
            provider=self.provider,
            request_id=request_id,
            received_at=received_at,
            method=self.meta["method"],
            content_type=self.headers.get("Content-Type", ""),
            body=self.body,
            headers={k.lower(): v for k, v in self.headers.items()},
            query=self.meta.get("query", ""),
            remote_addr=self.meta.get("remote_addr"),
        )


def load_cases(folder: str) -> list[Case]:
    base = PROVIDERS_DIR / folder
    return [
        Case(folder, meta_path.stem, json.loads(meta_path.read_text()), meta_path.with_suffix(".body"))
        for meta_path in sorted(base.glob("*.json"))
        if not meta_path.name.endswith(".expect.json")
    ]


def all_http_cases() -> list[Case]:
    return [case for folder in (*PROVIDER_NAMES, "_bad") for case in load_cases(folder)]


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _dotted(raw: Any, path: str) -> Any:
    node = raw
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def event_mismatches(expected: dict[str, Any], event: dict[str, Any]) -> list[str]:
    """What differs between an expected event (fixture metadata) and a published canonical event."""
    data = event["data"]
    problems = []
    if event["type"] != expected["type"]:
        problems.append(f"type {event['type']!r} != {expected['type']!r}")
    if event.get("subject") != expected["recipient"]:
        problems.append(f"subject {event.get('subject')!r} != {expected['recipient']!r}")
    if data["provider_event_id"] != expected["provider_event_id"]:
        problems.append(f"provider_event_id {data['provider_event_id']!r} != {expected['provider_event_id']!r}")
    if _instant(data["occurred_at"]) != _instant(expected["occurred_at"]):
        problems.append(f"occurred_at {data['occurred_at']!r} != {expected['occurred_at']!r}")
    if data["provider_event_type"] != expected["provider_event_type"]:
        problems.append(f"provider_event_type {data['provider_event_type']!r} != {expected['provider_event_type']!r}")
    if "bounce_severity" in expected:
        severity = (data.get("bounce") or {}).get("severity")
        if severity != expected["bounce_severity"]:
            problems.append(f"bounce severity {severity!r} != {expected['bounce_severity']!r}")
    for path, text in (expected.get("preserved") or {}).items():
        try:
            value = _dotted(data["raw"], path)
        except (KeyError, IndexError, TypeError, ValueError):
            problems.append(f"preserved {path} missing from data.raw")
            continue
        if value != text:
            problems.append(f"preserved {path}: {value!r} != {text!r}")
    return problems


def sequence_mismatches(expected: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[str]:
    if len(expected) != len(events):
        return [f"{len(events)} events, expected {len(expected)}"]
    return [
        f"#{n}: {p}"
        for n, (exp, ev) in enumerate(zip(expected, events, strict=True))
        for p in event_mismatches(exp, ev)
    ]
