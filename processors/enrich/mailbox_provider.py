"""Mailbox provider of the recipient's domain into ``data.mailbox_provider`` (``gmail``, ``outlook``, ...).

Sources: the table in ``mailbox_domains.toml`` (consumer domains, shipped with the package) and the
config's ``workspace_domains`` (corporate domains on ``microsoft365`` / ``google_workspace``), which win.
Guarantees: no DNS and no I/O per event; a sub-domain matches its parent's entry (``mail.acme.com`` is
``acme.com``); domains compare case-blind, without a trailing dot or surrounding blanks, and an
internationalised domain in Unicode matches its ASCII (punycode) form either way round; an unknown domain
leaves the field out rather than guessing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from contextlib import suppress
from functools import lru_cache
from importlib import resources

from processors.enrich.base import Event

TABLE_FILE = "mailbox_domains.toml"


def normalise_domain(domain: str) -> str:
    """The form domains are compared in: lower case, no blanks or trailing dot, IDNs as ASCII (``xn--``)."""
    domain = domain.strip().strip("<>").strip().lower()
    if not domain.isascii():
        # Unicode full stops (IDNA's separators) become dots; each label its punycode form.
        for dot in ("\u3002", "\uff0e", "\uff61"):
            domain = domain.replace(dot, ".")
        with suppress(UnicodeError):  # not a valid IDN: left as is, which no table entry matches
            domain = domain.rstrip(".").encode("idna").decode("ascii")
    return domain.rstrip(".")


@lru_cache(maxsize=1)
def bundled_domains() -> dict[str, str]:
    """domain -> provider key, from the shipped table."""
    text = resources.files("processors.enrich").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    table = tomllib.loads(text)["providers"]
    domains: dict[str, str] = {}
    for provider, names in table.items():
        for name in names:
            domains[normalise_domain(name)] = provider
    return domains


class MailboxProviderEnricher:
    name = "mailbox_provider"

    def __init__(self, workspace_domains: Mapping[str, str] | None = None) -> None:
        self._domains = dict(bundled_domains())
        for domain, provider in (workspace_domains or {}).items():
            self._domains[normalise_domain(domain.strip().lstrip("@"))] = provider
        self._by_domain: dict[str, str | None] = {}  # memo including misses and parent-domain matches

    def provider_of(self, domain: str) -> str | None:
        known = self._by_domain.get(domain)
        if known is not None or domain in self._by_domain:
            return known
        found: str | None = None
        candidate = normalise_domain(domain)
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
