"""Shared fixtures: a real Kafka-protocol broker, PostgreSQL and Redis.

The broker is the embedded Tansu unless ``ESPWIRE_KAFKA_BOOTSTRAP`` names a real Kafka. With
``ESPWIRE_REQUIRE_SERVICES=1`` (CI) a missing service fails the run instead of skipping tests.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from espwire.broker import EmbeddedBroker

REQUIRE_SERVICES = os.environ.get("ESPWIRE_REQUIRE_SERVICES") == "1"
POSTGRES_DSN = os.environ.get("ESPWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ESPWIRE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is not reachable at {host}:{port} and ESPWIRE_REQUIRE_SERVICES=1")
    pytest.skip(f"{name} is not reachable at {host}:{port}")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A Kafka bootstrap address for the whole session (topics are named per test)."""
    external = os.environ.get("ESPWIRE_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic prefix per test, so tests sharing the broker never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def postgres_dsn() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_DSN


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
async def pg_schema(postgres_dsn: str) -> AsyncIterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{name}"')
        yield name
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
    finally:
        await conn.close()
