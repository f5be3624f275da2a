"""An adapter's version changes whenever what it makes of the recorded cases does.

Dead letters carry the version of the adapter that refused them and ``espwire replay dlq --stale``
re-submits those an older version wrote, so a mapping change without a bump would leave them behind.
"""

from __future__ import annotations

import pytest

from processors.adapters import ADAPTERS
from tests.fixture_cases import PROVIDER_NAMES
from tests.support.adapter_digest import VERSIONS_FILE, pinned, provider_digest, unbumped

UPDATE = "python -m tests.support.adapter_digest --write"


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_a_changed_mapping_has_a_new_version(provider: str) -> None:
    recorded = pinned()[provider]
    version = ADAPTERS[provider].version
    digest = provider_digest(provider)
    if digest != recorded["digest"]:
        assert version != recorded["version"], (
            f"{provider}'s adapter gives other events or failures for its recorded cases than version "
            f"{version} did: bump its version, then run `{UPDATE}`"
        )
        pytest.fail(f"{provider}'s adapter is version {version}: record its new digest with `{UPDATE}`")
    assert version == recorded["version"], f"{provider}: version {version} but {VERSIONS_FILE.name} says {recorded}"


def test_every_provider_is_pinned() -> None:
    assert set(pinned()) == set(ADAPTERS) == set(PROVIDER_NAMES)


def test_the_update_refuses_a_changed_digest_under_the_old_version() -> None:
    before = {"sparkpost": {"version": "3", "digest": "a"}, "ipost": {"version": "3", "digest": "b"}}
    now = {"sparkpost": {"version": "3", "digest": "c"}, "ipost": {"version": "4", "digest": "d"}}
    assert unbumped(now, before) == ["sparkpost"]
