"""Configuration: the example loads, unknown keys are named, the environment wins over the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from espwire.cli import main
from espwire.config import EXAMPLE_CONFIG, ConfigError, load_settings


def test_example_has_one_source_per_provider() -> None:
    settings = load_settings(EXAMPLE_CONFIG)
    assert sorted(s.provider for s in settings.sources) == [
        "falconide",
        "ipost",
        "pure360",
        "recurly_engage",
        "sparkpost",
    ]
    assert all(s.id == s.provider for s in settings.sources)


def test_unknown_keys_are_refused_with_their_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nprot = 1\n[[sources]]\nid = "x"\nprovider = "nope"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(bad)
    assert "gateway.prot" in str(error.value)
    assert "sources.0.provider" in str(error.value)
    assert main(["config", "check", str(bad)]) == 2


def test_a_bad_key_from_the_environment_names_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[gateway]\nport = 8080\n")
    monkeypatch.setenv("ESPWIRE_GATEWAY_PROT", "1")
    with pytest.raises(ConfigError) as error:
        load_settings(good)
    assert "gateway.prot: Extra inputs are not permitted (from $ESPWIRE_GATEWAY_PROT)" in str(error.value)


def test_body_limits_beyond_one_kafka_record_are_refused_with_their_path(tmp_path: Path) -> None:
    # A request is one record of at most MAX_RECORD_BYTES (16 MiB): a larger limit would accept
    # webhooks that no topic takes, and they would stay in the spool for good.
    bad = tmp_path / "big.toml"
    bad.write_text(
        "[gateway]\nmax_decompressed_bytes = 16777216\n"
        '[[sources]]\nid = "sp"\nprovider = "sparkpost"\nmax_body_bytes = 20000000\n'
    )
    with pytest.raises(ConfigError) as error:
        load_settings(bad)
    assert "gateway.max_decompressed_bytes" in str(error.value)
    assert "sources.0.max_body_bytes" in str(error.value)
    fits = tmp_path / "fits.toml"
    fits.write_text("[gateway]\nmax_body_bytes = 15728640\nmax_decompressed_bytes = 15728640\n")
    assert load_settings(fits).gateway.max_decompressed_bytes == 15 * 1024 * 1024


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESPWIRE_KAFKA_BOOTSTRAP", "kafka.example:9092")
    monkeypatch.setenv("ESPWIRE_GATEWAY_MAX_BODY_BYTES", "1234")
    settings = load_settings(EXAMPLE_CONFIG)
    assert settings.kafka.bootstrap == "kafka.example:9092"
    assert settings.gateway.max_body_bytes == 1234
    assert settings.gateway.admin_token is not None  # the rest of the section still comes from the file
    assert "change-me" not in repr(settings)


def test_network_lists_from_the_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESPWIRE_GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8, 172.16.0.0/12")
    proxies = load_settings(EXAMPLE_CONFIG).gateway.trusted_proxies
    assert [str(p) for p in proxies] == ["10.0.0.0/8", "172.16.0.0/12"]


def test_the_commented_sink_examples_are_valid(tmp_path: Path) -> None:
    """The example file's commented [[sinks]] are what users copy: they must build as they stand."""
    from sinks.registry import build_sink

    text = EXAMPLE_CONFIG.read_text()
    keys = ("[[sinks]]", "name", "type", "dsn", "schema", "routes", "destinations")
    lines = [line[2:] if line.startswith("# ") and line[2:].startswith(keys) else line for line in text.splitlines()]
    uncommented = tmp_path / "all-sinks.toml"
    uncommented.write_text("\n".join(lines))
    settings = load_settings(uncommented)
    assert [s.type for s in settings.sinks] == ["files", "postgres", "suppression", "kafka_router", "http_forward"]
    for sink in settings.sinks:
        build_sink(sink, settings)


def test_campaign_context_takes_one_table_with_a_valid_name(tmp_path: Path) -> None:
    both = tmp_path / "both.toml"
    both.write_text('[enrich]\ncampaign_csv = "c.csv"\ncampaign_dsn = "postgresql://x@127.0.0.1/db"\n')
    with pytest.raises(ConfigError, match="campaign_csv or campaign_dsn, not both"):
        load_settings(both)
    bad_name = tmp_path / "name.toml"
    bad_name.write_text('[enrich]\ncampaign_dsn = "postgresql://x@127.0.0.1/db"\ncampaign_table = "a; drop"\n')
    with pytest.raises(ConfigError) as error:
        load_settings(bad_name)
    assert "enrich.campaign_table" in str(error.value)
    good = tmp_path / "good.toml"
    good.write_text('[enrich]\ncampaign_dsn = "postgresql://x@127.0.0.1/db"\ncampaign_table = "crm.campaigns"\n')
    assert load_settings(good).enrich.campaign_table == "crm.campaigns"


def test_config_check_refuses_bad_sink_options_with_their_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """[[sinks]] entries take any keys at load (each kind has its own options), so `config check` builds
    every sink to check them: a typo or a missing required option is named before deployment."""
    bad = tmp_path / "sinks.toml"
    bad.write_text('[[sinks]]\nname = "lake"\ntype = "files"\nbogus = 1\n')
    assert main(["config", "check", str(bad)]) == 2
    assert "sinks.lake.bogus" in capsys.readouterr().err
    missing = tmp_path / "missing.toml"
    missing.write_text('[[sinks]]\nname = "db"\ntype = "postgres"\n')
    assert main(["config", "check", str(missing)]) == 2
    assert "sinks.db.dsn" in capsys.readouterr().err
    good = tmp_path / "good.toml"
    good.write_text('[[sinks]]\nname = "lake"\ntype = "files"\npath = "events"\n')
    assert main(["config", "check", str(good)]) == 0


def test_a_missing_file_is_named_and_the_fallback_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file$"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.delenv("ESPWIRE_CONFIG", raising=False)
    monkeypatch.setattr("espwire.config.EXAMPLE_CONFIG", tmp_path / "installed" / "espwire.example.toml")
    with pytest.raises(ConfigError, match="pass --config or set ESPWIRE_CONFIG"):
        load_settings()


def test_the_redis_url_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """It carries Redis's password in production (the Kubernetes Secret puts it there)."""
    monkeypatch.setenv("ESPWIRE_DEDUPE_REDIS_URL", "redis://:hunter2@redis:6379/0")
    settings = load_settings(EXAMPLE_CONFIG)
    assert settings.dedupe.redis_url.get_secret_value() == "redis://:hunter2@redis:6379/0"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
