"""Mailbox provider by recipient domain: shipped table, workspace domains from config, sub-domains."""

from __future__ import annotations

import pytest

from processors.enrich.mailbox_provider import MailboxProviderEnricher, bundled_domains
from tests.unit.processors.enrich.conftest import make_event


@pytest.mark.parametrize(
    ("email", "provider"),
    [
        ("a@gmail.com", "gmail"),
        ("a@GoogleMail.com", "gmail"),
        ("a@hotmail.co.uk", "outlook"),
        ("a@outlook.com", "outlook"),
        ("a@aol.com", "yahoo"),
        ("a@yahoo.co.jp", "yahoo"),
        ("a@icloud.com", "apple"),
        ("a@web.de", "gmx"),
        ("a@yandex.ru", "yandex"),
        ("a@mail.ru", "mail_ru"),
        ("a@comcast.net", "comcast"),
        ("a@acme.com", "microsoft365"),
        ("a@eu.acme.com", "microsoft365"),
        ("a@globex.io", "google_workspace"),
        ("a@unknown-company.example", None),
    ],
)
async def test_provider_of_recipient(email: str, provider: str | None) -> None:
    enricher = MailboxProviderEnricher({"acme.com": "microsoft365", "@Globex.io": "google_workspace"})
    event = make_event(recipient={"email": email})
    await enricher.enrich_batch([event])
    assert event["data"].get("mailbox_provider") == provider


async def test_events_without_an_address_are_left_alone() -> None:
    events = [
        make_event(recipient={}),
        make_event(recipient={"email": "no-at-sign"}),
        make_event(recipient={"phone": "+1"}),
    ]
    await MailboxProviderEnricher().enrich_batch(events)
    assert all("mailbox_provider" not in e["data"] for e in events)


def test_the_table_has_no_domain_twice() -> None:
    import tomllib
    from importlib import resources

    table = tomllib.loads(resources.files("processors.enrich").joinpath("mailbox_domains.toml").read_text())
    names = [name for names in table["providers"].values() for name in names]
    assert len(names) == len(set(names)) == len(bundled_domains())


@pytest.mark.parametrize(
    ("domain", "provider"),
    [
        ("hotmail.com.tr", "outlook"),
        ("outlook.com.vn", "outlook"),
        ("live.co.za", "outlook"),
        ("yahoo.ro", "yahoo"),
        ("yahoo.co.th", "yahoo"),
        ("netscape.net", "yahoo"),
        ("yandex.com.tr", "yandex"),
        ("gmx.es", "gmx"),
        ("gmx.co.uk", "gmx"),
    ],
)
def test_country_domains_of_the_big_providers(domain: str, provider: str) -> None:
    assert MailboxProviderEnricher().provider_of(domain) == provider


@pytest.mark.parametrize(
    ("email", "provider"),
    [
        ("a@gmail.com ", "gmail"),  # blanks and brackets an address sometimes keeps
        ("<a@gmail.com>", "gmail"),
        ("a@ICLOUD.COM.", "apple"),
        ("a@xn--bcher-kva.de", "microsoft365"),  # configured in Unicode, received as punycode
        ("a@BÜCHER.de", "microsoft365"),
        ("a@почта.рф", "google_workspace"),  # configured as punycode, received in Unicode
        ("a@mail.почта.рф", "google_workspace"),
        ("a@bücher。de", "microsoft365"),  # an ideographic full stop separates labels too (IDNA)
    ],
)
async def test_domains_compare_in_one_form(email: str, provider: str) -> None:
    enricher = MailboxProviderEnricher({"Bücher.de": "microsoft365", "xn--80a1acny.xn--p1ai": "google_workspace"})
    event = make_event(recipient={"email": email})
    await enricher.enrich_batch([event])
    assert event["data"].get("mailbox_provider") == provider
