"""Mailbox provider of the recipient's domain into ``data.mailbox_provider`` (``gmail``, ``outlook``, ...).

Sources: the table in ``mailbox_domains.toml`` (consumer domains, shipped with the package) and the
config's ``workspace_domains`` (corporate domains on ``microsoft365`` / ``google_workspace``), which win.
Guarantees: no DNS and no I/O per event; a sub-domain matches its parent's entry (``mail.acme.com`` is
``acme.com``); an unknown domain leaves the field out rather than guessing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources

from processors.enrich.base import Event

TABLE_FILE = "mailbox_domains.toml"


@lru_cache(maxsize=1)
def bundled_domains() -> dict[str, str]:
    """domain -> provider key, from the shipped table."""
    text = resources.files("processors.enrich").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    table = tomllib.loads(text)["providers"]
    domains: dict[str, str] = {}
    for provider, names in table.items():
        for name in names:
            domains[name.lower()] = provider
    return domains


class MailboxProviderEnricher:
    name = "mailbox_provider"

    def __init__(self, workspace_domains: Mapping[str, str] | None = None) -> None:
        self._domains = dict(bundled_domains())
        for domain, provider in (workspace_domains or {}).items():
            self._domains[domain.strip().lower().lstrip("@")] = provider
        self._by_domain: dict[str, str | None] = {}  # memo including misses and parent-domain matches

    def provider_of(self, domain: str) -> str | None:
        known = self._by_domain.get(domain)
        if known is not None or domain in self._by_domain:
            return known
        found: str | None = None
        candidate = domain.lower().rstrip(".")
        while candidate:
            found = self._domains.get(candidate)
            if found is not None:
                break
            _, dot, rest = candidate.partition(".")
            candidate = rest if dot and "." in rest else ""
        if len(self._by_domain) > 100_000:
            self._by_domain.clear()
        self._by_domain[domain] = found
        return found

    async def enrich_batch(self, events: list[Event]) -> None:
        for event in events:
            data = event["data"]
            email = data["recipient"].get("email")
            if not email or not isinstance(email, str):
                continue
            _, at, domain = email.rpartition("@")
            if not at or not domain:
                continue
            provider = self.provider_of(domain)
            if provider is not None:
                data["mailbox_provider"] = provider
