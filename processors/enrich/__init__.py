"""Enrichers: optional, pluggable, batch-oriented additions to canonical events (never removals).

``build_enrichers`` turns ``[enrich]`` into the list to apply, in an order where later enrichers may
read what earlier ones wrote (bot_click reads geo); ``enrich_all`` applies them with timing and turns
any failure into a note in ``data.enrichment_errors``.
"""

from __future__ import annotations

from espwire.config import EnrichConfig
from processors.enrich.base import Enricher, enrich_all, note_error
from processors.enrich.bot_click import BotClickEnricher, MessageStateStore
from processors.enrich.bounce_class import BounceClassEnricher
from processors.enrich.campaign_context import CampaignContextEnricher, CsvTable, PostgresTable
from processors.enrich.geoip import GeoIpEnricher
from processors.enrich.machine_open import MachineOpenEnricher
from processors.enrich.mailbox_provider import MailboxProviderEnricher
from processors.enrich.user_agent import UserAgentEnricher

__all__ = ["Enricher", "build_enrichers", "close_enrichers", "enrich_all", "note_error"]


def build_enrichers(config: EnrichConfig, store: MessageStateStore | None) -> list[Enricher]:
    """The enabled enrichers, in application order. ``store``: the dedupe store, for bot-click timing
    (None: timing rules off, agent and network rules still on)."""
    enrichers: list[Enricher] = []
    if config.user_agent:
        enrichers.append(UserAgentEnricher(config.user_agent_cache_size))
    if config.geoip:
        enrichers.append(
            GeoIpEnricher(config.geoip_city_db, config.geoip_asn_db, lookup_reserved=config.geoip_lookup_reserved)
        )
    if config.mailbox_provider:
        enrichers.append(MailboxProviderEnricher(config.workspace_domains))
    if config.bounce_class:
        enrichers.append(BounceClassEnricher())
    if config.machine_open:
        enrichers.append(MachineOpenEnricher())
    if config.bot_click:
        enrichers.append(
            BotClickEnricher(
                store,
                seconds_after_delivery=config.bot_click_seconds_after_delivery,
                state_ttl_seconds=config.bot_click_state_hours * 3600,
                scanner_asns=config.bot_click_scanner_asns,
            )
        )
    if config.campaign_csv is not None:
        enrichers.append(CampaignContextEnricher(CsvTable(config.campaign_csv)))
    elif config.campaign_dsn is not None:
        table = PostgresTable(
            config.campaign_dsn.get_secret_value(), config.campaign_table, check_seconds=config.campaign_refresh_seconds
        )
        enrichers.append(CampaignContextEnricher(table))
    return enrichers


def close_enrichers(enrichers: list[Enricher]) -> None:
    """Closes what enrichers opened (GeoIP database files)."""
    for enricher in enrichers:
        close = getattr(enricher, "close", None)
        if close is not None:
            close()
