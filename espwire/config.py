"""Configuration: one TOML file, every key overridable by ``ESPWIRE_<SECTION>_<KEY>`` variables.

Each section is a pydantic model with ``extra="forbid"``, so a misspelt key is an error that names
its path; secrets are ``SecretStr`` and never printed. ``espwire config check FILE`` runs exactly
this validation.
"""

from __future__ import annotations

import os
import tomllib
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from espwire.event import Provider
from espwire.topics import MAX_RECORD_BYTES

# A request is kept as one Kafka record: its body plus up to 1 MiB for the envelope header and the batch.
MAX_BODY_BYTES = MAX_RECORD_BYTES - 1024 * 1024

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO_ROOT / "deploy" / "espwire.example.toml"
IPNetwork = IPv4Network | IPv6Network


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeaderAuth(Section):
    type: Literal["header"]
    name: str
    value: SecretStr


class BasicAuth(Section):
    type: Literal["basic"]
    username: str
    password: SecretStr


class BearerAuth(Section):
    type: Literal["bearer"]
    token: SecretStr


class NoAuth(Section):
    type: Literal["none"]


AuthRule = Annotated[HeaderAuth | BasicAuth | BearerAuth | NoAuth, Field(discriminator="type")]


def _networks(value: Any) -> Any:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    return [ip_network(v, strict=False) if isinstance(v, str) else v for v in value]


class SourceConfig(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    provider: Provider
    # Several entries: any one that matches lets the request in (secret rotation).
    auth: list[AuthRule] = Field(default_factory=lambda: [NoAuth(type="none")])  # type: ignore[arg-type]
    allow_ips: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    # Zone of timestamps the provider writes without an offset (iPost "YYYY-MM-DD HH:MM:SS").
    timezone: str = "UTC"
    dedupe_window_hours: float | None = None
    max_body_bytes: int | None = Field(default=None, ge=1, le=MAX_BODY_BYTES)

    _split_ips = field_validator("allow_ips", mode="before")(_networks)


class GatewayConfig(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=MAX_BODY_BYTES)
    max_decompressed_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=MAX_BODY_BYTES)
    # The longest request line (method, path and query); longer gets 400 before anything is stored. A GET
    # batch (Recurly Engage) travels in the query: aiohttp's own 8 KiB refused one of ten events. At most
    # 256 KiB, so the envelope header that carries the query (JSON-escaped: up to twice as long) and the
    # kept headers (8 KiB each at most) stay within the 1 MiB a record keeps beside its body.
    max_url_bytes: int = Field(default=256 * 1024, ge=8190, le=256 * 1024)
    # Wait this long for the broker's acknowledgement before the request goes to the spool.
    ack_timeout_seconds: float = 2.0
    # A client slower than this to send its request gets 408 (slowloris guard).
    read_timeout_seconds: float = 30.0
    # From the environment as a comma-separated list: ESPWIRE_GATEWAY_TRUSTED_PROXIES=10.0.0.0/8,172.16.0.0/12
    trusted_proxies: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    spool_max_bytes: int = 1024 * 1024 * 1024
    spool_segment_bytes: int = 64 * 1024 * 1024
    linger_ms: int = 2  # the spool drainer's producer only: live requests are group-committed, no linger
    # Producers (connections) the group commit alternates between: with two, the next group leaves while
    # the previous one is being acknowledged, so the gateway does not idle on the round trip.
    produce_lanes: int = Field(default=2, ge=1, le=8)
    admin_token: SecretStr | None = None
    # On SIGTERM, keep serving this long with /readyz answering 503, so a load balancer that health-checks
    # /readyz stops sending here before the port closes (a refused connection is a lost webhook for a
    # provider that never retries). Set it above the balancer's check interval times its fall count.
    shutdown_grace_seconds: float = Field(default=0.0, ge=0)

    _split_ips = field_validator("trusted_proxies", mode="before")(_networks)


class KafkaConfig(Section):
    # Unset: `espwire dev` starts the embedded broker and fills this in.
    bootstrap: str | None = None
    topic_prefix: str = "espwire"
    partitions: int = 4
    replication: int = 1
    compression: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    client_id: str = "espwire"


class ProcessorConfig(Section):
    group_id: str = "espwire-processors"
    max_batch_records: int = 2000
    max_batch_wait_ms: int = 50
    # Raw records are adapted and published in slices of about this many body bytes (~1,000 events).
    max_batch_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Slices published and awaiting their acks while the next is adapted; the slice in its dedupe and
    # enrich stages comes on top (so up to N+1 slices in flight). 1: publish one slice at a time.
    max_in_flight_batches: int = Field(default=3, ge=1)
    # Kafka's max.poll.interval.ms: a processor paused longer than this (on a dedupe store that does not
    # answer) leaves the group and its partitions go to the others; it rejoins when it polls again.
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)


class DedupeConfig(Section):
    enabled: bool = True
    store: Literal["redis", "sqlite", "memory"] = "sqlite"
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")  # may carry the password: never printed
    key_prefix: str = "espwire:dedupe:"
    window_hours: float = 72.0
    # What the processor does when the store is down: pause (default) or pass events through.
    on_store_error: Literal["pause", "pass"] = "pause"
    # How long a claim stays ours without a commit; past it another processor may take the id over. Below
    # the producer's delivery timeout (processors/stages.py, SAFE_LEASE_SECONDS) the processor warns at start.
    lease_seconds: float = Field(default=60.0, gt=0)
    # How often the SQLite store deletes expired rows (Redis expires keys by itself).
    sqlite_purge_seconds: float = Field(default=300.0, gt=0)


# A PostgreSQL table name, optionally schema-qualified (quoted when queried).
TABLE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$"


class EnrichConfig(Section):
    user_agent: bool = True
    geoip: bool = True
    geoip_city_db: Path | None = None
    geoip_asn_db: Path | None = None
    # Also look up private, reserved and documentation addresses in the configured .mmdb files: for a
    # database that maps your own networks (or a test setup). Never with the bundled default.
    geoip_lookup_reserved: bool = False
    mailbox_provider: bool = True
    workspace_domains: dict[str, str] = Field(default_factory=dict)
    machine_open: bool = True
    bot_click: bool = True
    bot_click_seconds_after_delivery: float = 10.0
    # How long per-message delivery/click times are kept for the bot-click timing rules.
    bot_click_state_hours: float = Field(default=24.0, gt=0)
    # Autonomous systems of link scanners (e.g. 8075 Microsoft): a click from one is a bot.
    bot_click_scanner_asns: list[int] = Field(default_factory=list)
    user_agent_cache_size: int = Field(default=10_000, ge=0)
    bounce_class: bool = True
    # Campaign attributes by campaign or mailing id: a CSV file, or a PostgreSQL table of the same
    # columns (campaign_id and/or mailing_id, then any others), re-read every campaign_refresh_seconds.
    campaign_csv: Path | None = None
    campaign_dsn: SecretStr | None = None
    campaign_table: str = Field(default="campaign_context", pattern=TABLE_NAME_PATTERN)
    campaign_refresh_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one_campaign_table(self) -> EnrichConfig:
        if self.campaign_csv is not None and self.campaign_dsn is not None:
            raise ValueError("set campaign_csv or campaign_dsn, not both")
        return self


class SinkConfig(Section):
    """One `[[sinks]]` entry; each kind validates its own options in sinks/."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    type: Literal["kafka_router", "postgres", "files", "http_forward", "suppression", "stdout"]
    enabled: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ESPWIRE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
    )

    gateway: GatewayConfig = GatewayConfig()
    kafka: KafkaConfig = KafkaConfig()
    processor: ProcessorConfig = ProcessorConfig()
    dedupe: DedupeConfig = DedupeConfig()
    enrich: EnrichConfig = EnrichConfig()
    sources: list[SourceConfig] = Field(default_factory=list)
    sinks: list[SinkConfig] = Field(default_factory=list)
    # Where the spool, the embedded dedupe store and file sinks live.
    datadir: Path = Path("espwire-data")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file comes in as init values; the environment wins over it.
        return (env_settings, init_settings)

    def source(self, source_id: str) -> SourceConfig | None:
        return self._sources_by_id().get(source_id)

    def _sources_by_id(self) -> dict[str, SourceConfig]:
        return {s.id: s for s in self.sources}

    @field_validator("sources")
    @classmethod
    def _unique_ids(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        seen: set[str] = set()
        for source in sources:
            if source.id in seen:
                raise ValueError(f"two sources are named {source.id!r}")
            seen.add(source.id)
        return sources


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the key's path."""


def _describe(error: ValidationError, origin: str) -> str:
    lines = [f"{origin}: {error.error_count()} problem(s)"]
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"  {path}: {item['msg']}{_from_environment(item['loc'])}")
    return "\n".join(lines)


def _from_environment(loc: tuple[int | str, ...]) -> str:
    """Where a key came from the environment, which variable: not in the file, it would be searched for there."""
    if loc and all(isinstance(part, str) for part in loc[:2]):
        name = "ESPWIRE_" + "_".join(str(part) for part in loc[:2]).upper()
        if name in os.environ:
            return f" (from ${name})"
    return ""


def load_settings(path: Path | str | None = None) -> Settings:
    """Reads the TOML file (``path``, else ``$ESPWIRE_CONFIG``, else the example), then the environment."""
    chosen = Path(path or os.environ.get("ESPWIRE_CONFIG") or EXAMPLE_CONFIG)
    try:
        values = tomllib.loads(chosen.read_text())
    except FileNotFoundError:
        hint = " (the example config is in a checkout only: pass --config or set ESPWIRE_CONFIG)"
        raise ConfigError(f"{chosen}: no such file{hint if chosen == EXAMPLE_CONFIG else ''}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: not valid TOML: {exc}") from None
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(chosen))) from None
