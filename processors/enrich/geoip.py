"""Country, region, city and autonomous system of ``data.client.ip`` into ``data.geo``.

Sources: MaxMind-format .mmdb files when configured (``geoip_city_db``, ``geoip_asn_db``: GeoLite2/GeoIP2
City and ASN, or DB-IP's lite files in the same format); otherwise the country + AS-name database that
ships inside the ``geoip2fast`` package (no download at run time; no region, city or AS number).
An address may come with a port or in brackets (``203.0.113.7:443``, ``[2001:db8::1]:443``): the
address alone is looked up. Guarantees: private, loopback, link-local and reserved addresses are skipped
(no ``geo``), unless ``lookup_reserved`` asks the configured files about them too (a database of one's
own networks); a lookup never blocks the loop for more than one batch's lookups (databases are opened in
a worker thread); results are cached per address.
"""

from __future__ import annotations

import asyncio
import ipaddress
from bisect import bisect_right
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import maxminddb

from processors.enrich.base import Event, per_event_failure

Geo = dict[str, Any]
_EMPTY: Geo = {}

# IPv4 blocks that are not globally routed (RFC 6890 and multicast), as sorted integer ranges: a bisect
# on them is ~10x cheaper than ipaddress's is_global for the common dotted-quad case.
_NON_GLOBAL_V4 = sorted(
    (int(net.network_address), int(net.broadcast_address))
    for net in map(
        ipaddress.IPv4Network,
        (
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "192.168.0.0/16",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "224.0.0.0/3",
        ),
    )
)
_RANGE_STARTS = [start for start, _ in _NON_GLOBAL_V4]


def _global_v4(ip: str) -> bool | None:
    """True/False for a plain dotted quad, None when it is not one (the caller parses it properly)."""
    parts = ip.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        return None
    a, b, c, d = (int(p) for p in parts)
    if a > 255 or b > 255 or c > 255 or d > 255:
        return None
    value = (a << 24) | (b << 16) | (c << 8) | d
    index = bisect_right(_RANGE_STARTS, value) - 1
    return not (index >= 0 and value <= _NON_GLOBAL_V4[index][1])


def bare_address(ip: str) -> str:
    """The address without blanks, brackets or port: ``[2001:db8::1]:443`` -> ``2001:db8::1``,
    ``203.0.113.7:443`` -> ``203.0.113.7``; anything else as given (bare IPv6 has two colons or more)."""
    ip = ip.strip()
    if ip.startswith("["):
        end = ip.find("]")
        return ip[1:end] if end > 0 else ip
    if ip.count(":") == 1:
        return ip.partition(":")[0]
    return ip


class GeoLookup(Protocol):
    def lookup(self, ip: str) -> Geo | None: ...

    def close(self) -> None: ...


def _name(record: dict[str, Any], section: str) -> str | None:
    part = record.get(section)
    names = part.get("names") if isinstance(part, dict) else None
    value = names.get("en") if isinstance(names, dict) else None
    return value if isinstance(value, str) else None


class MaxMindLookup:
    """GeoIP2/GeoLite2-City (or -Country) and -ASN files, either one optional."""

    def __init__(self, city_db: Path | None, asn_db: Path | None) -> None:
        self._city = maxminddb.open_database(str(city_db)) if city_db else None
        self._asn = maxminddb.open_database(str(asn_db)) if asn_db else None

    def lookup(self, ip: str) -> Geo | None:
        geo: Geo = {}
        if self._city is not None:
            record = self._city.get(ip)
            if isinstance(record, dict):
                country = record.get("country") or record.get("registered_country") or {}
                geo["country"] = country.get("iso_code") if isinstance(country, dict) else None
                subdivisions = record.get("subdivisions")
                first = subdivisions[0] if isinstance(subdivisions, list) and subdivisions else None
                region: dict[str, Any] = first if isinstance(first, dict) else {}
                geo["region"] = region.get("iso_code") or (region.get("names") or {}).get("en")
                geo["city"] = _name(record, "city")
        if self._asn is not None:
            record = self._asn.get(ip)
            if isinstance(record, dict):
                geo["asn"] = record.get("autonomous_system_number")
                geo["as_org"] = record.get("autonomous_system_organization")
        return geo or None

    def close(self) -> None:
        for reader in (self._city, self._asn):
            if reader is not None:
                reader.close()


@lru_cache(maxsize=1)
def _bundled_database() -> Any:
    # One copy per process (~0.3 s and ~100 MB to load), however many enrichers are built.
    from geoip2fast import GeoIP2Fast  # type: ignore[import-untyped]

    return GeoIP2Fast(geoip2fast_data_file="geoip2fast-asn-ipv6.dat.gz", verbose=False)


class BundledLookup:
    """geoip2fast's shipped IPv4+IPv6 country and AS-name data (read-only, shared by the process)."""

    def __init__(self) -> None:
        self._db = _bundled_database()

    def lookup(self, ip: str) -> Geo | None:
        found = self._db.lookup(ip)
        country = found.country_code
        if not country or len(country) != 2 or not country.isalpha():  # "--" and error codes
            country = None
        as_org = found.asn_name or None
        if country is None and as_org is None:
            return None
        return {"country": country, "region": None, "city": None, "asn": None, "as_org": as_org}

    def close(self) -> None:
        pass


class GeoIpEnricher:
    name = "geoip"

    def __init__(
        self,
        city_db: Path | None = None,
        asn_db: Path | None = None,
        *,
        cache_size: int = 50_000,
        lookup_reserved: bool = False,
    ) -> None:
        for option, path in (("geoip_city_db", city_db), ("geoip_asn_db", asn_db)):
            if path is not None and not path.is_file():
                # At start-up, not as a note on every event later: a wrong path is a configuration error.
                raise FileNotFoundError(f"[enrich] {option}: {path} is not a file")
        self._paths = (city_db, asn_db)
        # Only files the user chose may know such addresses; the bundled data has nothing for them.
        self._lookup_reserved = lookup_reserved and (city_db is not None or asn_db is not None)
        self._lookup: GeoLookup | None = None
        self._cache: dict[str, Geo] = {}
        self._cache_size = cache_size

    def _open(self) -> GeoLookup:
        city_db, asn_db = self._paths
        if city_db is not None or asn_db is not None:
            return MaxMindLookup(city_db, asn_db)
        return BundledLookup()

    def _locate(self, lookup: GeoLookup, ip: str) -> Geo:
        ip = bare_address(ip)
        is_global = _global_v4(ip)
        if is_global is None:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                return _EMPTY
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            # private, loopback, link-local, reserved, documentation, shared (CGNAT), multicast
            is_global = address.is_global and not address.is_multicast
            ip = str(address)
        if not is_global and not self._lookup_reserved:
            return _EMPTY
        found = lookup.lookup(ip)
        if not found:
            return _EMPTY
        return {
            "country": found.get("country"),
            "region": found.get("region"),
            "city": found.get("city"),
            "asn": found.get("asn"),
            "as_org": found.get("as_org"),
        }

    async def enrich_batch(self, events: list[Event]) -> None:
        lookup = self._lookup
        if lookup is None:
            lookup = self._lookup = await asyncio.to_thread(self._open)
        cache = self._cache
        for event in events:
            data = event["data"]
            client = data.get("client")
            ip = client.get("ip") if client else None
            if not ip or not isinstance(ip, str):
                continue
            geo = cache.get(ip)
            if geo is None:
                try:
                    geo = self._locate(lookup, ip)
                except Exception as exc:
                    per_event_failure(self.name, event, exc)
                    continue
                if len(cache) >= self._cache_size:
                    cache.clear()  # cheaper than LRU bookkeeping per hit; refills within a batch or two
                cache[ip] = geo
            if geo:
                data["geo"] = dict(geo)

    def close(self) -> None:
        if self._lookup is not None:
            self._lookup.close()
            self._lookup = None
