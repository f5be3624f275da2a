"""GeoIP enricher: MaxMind-format files written here with mmdb-writer, and the bundled default database."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from processors.enrich.geoip import GeoIpEnricher
from tests.unit.processors.enrich.conftest import make_event


@pytest.fixture(scope="module")
def mmdb_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mmdb")
    city = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
    city.insert_network(
        IPSet(["81.2.69.0/24"]),
        {
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
            "city": {"names": {"en": "London"}},
        },
    )
    city.insert_network(IPSet(["2001:480::/32"]), {"country": {"iso_code": "US"}})
    city_path = folder / "city.mmdb"
    city.to_db_file(str(city_path))
    asn = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN", languages=["en"])
    asn.insert_network(
        IPSet(["81.2.64.0/18"]),
        {"autonomous_system_number": MmdbU32(20712), "autonomous_system_organization": "Andrews & Arnold Ltd"},
    )
    asn_path = folder / "asn.mmdb"
    asn.to_db_file(str(asn_path))
    return city_path, asn_path


async def test_maxmind_files_give_country_region_city_and_as(mmdb_files: tuple[Path, Path]) -> None:
    enricher = GeoIpEnricher(*mmdb_files)
    events = [
        make_event(n=1, client={"ip": "81.2.69.142"}),
        make_event(n=2, client={"ip": "::ffff:81.2.69.160"}),
        make_event(n=3, client={"ip": "2001:480::1"}),
        make_event(n=4, client={"ip": "192.0.2.1"}),
        make_event(n=5, client={"ip": "10.0.0.7"}),
        make_event(n=6, client={"ip": "not an address"}),
        make_event(n=7),
    ]
    try:
        await enricher.enrich_batch(events)
    finally:
        enricher.close()
    london = {"country": "GB", "region": "ENG", "city": "London", "asn": 20712, "as_org": "Andrews & Arnold Ltd"}
    assert events[0]["data"]["geo"] == london
    assert events[1]["data"]["geo"] == london
    assert events[2]["data"]["geo"] == {"country": "US", "region": None, "city": None, "asn": None, "as_org": None}
    for skipped in events[3:]:
        assert "geo" not in skipped["data"]
        assert "enrichment_errors" not in skipped["data"]


async def test_addresses_with_a_port_or_brackets(mmdb_files: tuple[Path, Path]) -> None:
    enricher = GeoIpEnricher(*mmdb_files)
    ips = ["81.2.69.142:443", "[81.2.69.142]", "[2001:480::1]:8080", " [2001:480::1] ", "10.0.0.7:443", "[::1]:80"]
    events = [make_event(n=n, client={"ip": ip}) for n, ip in enumerate(ips)]
    try:
        await enricher.enrich_batch(events)
    finally:
        enricher.close()
    assert [(e["data"].get("geo") or {}).get("country") for e in events] == ["GB", "GB", "US", "US", None, None]
    assert all("enrichment_errors" not in e["data"] for e in events)


async def test_asn_file_alone(mmdb_files: tuple[Path, Path]) -> None:
    enricher = GeoIpEnricher(None, mmdb_files[1])
    event = make_event(client={"ip": "81.2.70.1"})
    try:
        await enricher.enrich_batch([event])
    finally:
        enricher.close()
    assert event["data"]["geo"]["asn"] == 20712
    assert event["data"]["geo"]["country"] is None


async def test_bundled_database_without_configuration() -> None:
    enricher = GeoIpEnricher()
    events = [make_event(n=1, client={"ip": "8.8.8.8"}), make_event(n=2, client={"ip": "127.0.0.1"})]
    try:
        await enricher.enrich_batch(events)
    finally:
        enricher.close()
    geo = events[0]["data"]["geo"]
    assert geo["country"] == "US"
    assert "GOOGLE" in geo["as_org"].upper()
    assert "geo" not in events[1]["data"]


async def test_reserved_addresses_looked_up_only_when_asked_and_only_in_configured_files(
    tmp_path: Path,
) -> None:
    own = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
    own.insert_network(IPSet(["192.0.2.0/24", "10.0.0.0/8"]), {"country": {"iso_code": "NL"}})
    path = tmp_path / "own.mmdb"
    own.to_db_file(str(path))

    async def geo_of(enricher: GeoIpEnricher, ip: str) -> object:
        event = make_event(client={"ip": ip})
        try:
            await enricher.enrich_batch([event])
        finally:
            enricher.close()
        return event["data"].get("geo")

    assert await geo_of(GeoIpEnricher(path, None), "192.0.2.7") is None  # the default: skipped
    found = await geo_of(GeoIpEnricher(path, None, lookup_reserved=True), "192.0.2.7")
    assert found == {"country": "NL", "region": None, "city": None, "asn": None, "as_org": None}
    assert await geo_of(GeoIpEnricher(path, None, lookup_reserved=True), "10.1.2.3") is not None
    # The bundled database has nothing for such addresses: the option does not apply to it.
    assert await geo_of(GeoIpEnricher(lookup_reserved=True), "192.0.2.7") is None


def test_a_configured_database_that_is_not_there_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"\[enrich\] geoip_asn_db: .*missing.mmdb is not a file"):
        GeoIpEnricher(None, tmp_path / "missing.mmdb")
    with pytest.raises(FileNotFoundError, match=r"geoip_city_db"):
        GeoIpEnricher(tmp_path, None)  # a directory is no database either
