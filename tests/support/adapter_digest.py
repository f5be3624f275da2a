"""What each provider's adapter makes of every recorded case, as one digest per provider.

An adapter's ``version`` is recorded in its dead letters so that ``espwire replay dlq --stale`` can
re-submit what an older mapping refused. That only works if the version changes whenever the mapping
does: tests/unit/processors/adapters/test_adapter_versions.py pins each provider's digest to its version
in tests/data/adapter_versions.json, so a change in the events or failures an adapter gives fails until
the version is bumped and the file rewritten:

    python -m tests.support.adapter_digest --write

which refuses (exit 1) to record a changed digest under the version it was recorded with.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from espwire.envelope import Envelope
from processors.adapters import ADAPTERS, adapt_channel
from processors.adapters.base import AdaptResult
from tests.fixture_cases import PROVIDER_NAMES, PROVIDERS_DIR, load_cases

VERSIONS_FILE = PROVIDERS_DIR.parent / "adapter_versions.json"
RECEIVED = "2026-11-24T00:00:00Z"
# Files a provider's pull channels read: (provider, channel, folder under its fixtures, file pattern).
CHANNEL_FILES = (
    ("pure360", "ftp", "ftp", "*.log"),
    ("pure360", "soap", "soap", "*.xml"),
    ("recurly_engage", "s3", "s3", "*.json"),
)


def _results(provider: str) -> Iterator[tuple[str, AdaptResult]]:
    adapter = ADAPTERS[provider]
    cases = [*load_cases(provider), *(c for c in load_cases("_bad") if c.provider == provider)]
    for case in cases:
        if "body_generator" in case.meta:
            continue  # generated, oversized bodies: refused by the gateway before any adapter
        yield case.id, adapter.adapt(case.envelope())
    for owner, channel, folder, pattern in CHANNEL_FILES:
        if owner != provider:
            continue
        for path in sorted((PROVIDERS_DIR / provider / folder).glob(pattern)):
            if path.name.endswith(".expect.json"):
                continue
            envelope = Envelope(
                provider, provider, path.name, RECEIVED, "GET", "", path.read_bytes(), options={"channel": channel}
            )
            yield f"{provider}/{folder}/{path.name}", adapt_channel(envelope, channel)


def provider_digest(provider: str) -> str:
    """A digest of every event and failure the provider's adapter gives for its recorded cases."""
    h = hashlib.sha256()
    for case_id, result in _results(provider):
        failures = [[f.reason, f.detail, f.index] for f in result.failures]
        h.update(orjson.dumps([case_id, result.events, failures], option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def current() -> dict[str, dict[str, str]]:
    return {p: {"version": ADAPTERS[p].version, "digest": provider_digest(p)} for p in PROVIDER_NAMES}


def pinned(path: Path = VERSIONS_FILE) -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(path.read_text())
    return loaded


def unbumped(now: dict[str, dict[str, str]], before: dict[str, dict[str, str]]) -> list[str]:
    """Providers whose digest changed while their version did not."""
    return [
        p
        for p, entry in now.items()
        if p in before and entry["digest"] != before[p]["digest"] and entry["version"] == before[p]["version"]
    ]


def main(argv: list[str]) -> int:
    now = current()
    text = json.dumps(now, indent=2) + "\n"
    if "--write" not in argv:
        sys.stdout.write(text)
        return 0
    stale = unbumped(now, pinned()) if VERSIONS_FILE.exists() else []
    if stale:
        sys.stderr.write(f"the mapping of {', '.join(stale)} changed: bump its adapter's version first\n")
        return 1
    VERSIONS_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
