"""The explicit adapter registry: provider name -> adapter instance."""

from __future__ import annotations

from collections.abc import Callable

from espwire.envelope import Envelope
from processors.adapters.base import Adapter, AdaptResult, Failure
from processors.adapters.falconide import FalconideAdapter
from processors.adapters.ipost import IPostAdapter
from processors.adapters.pure360 import Pure360Adapter
from processors.adapters.pure360_ftp import adapt_log
from processors.adapters.pure360_soap import adapt_batch
from processors.adapters.recurly_engage import RecurlyEngageAdapter
from processors.adapters.recurly_engage_s3 import adapt_export
from processors.adapters.sparkpost import SparkPostAdapter

ADAPTERS: dict[str, Adapter] = {
    adapter.provider: adapter
    for adapter in (
        SparkPostAdapter(),
        FalconideAdapter(),
        IPostAdapter(),
        Pure360Adapter(),
        RecurlyEngageAdapter(),
    )
}


# Files fetched from a provider rather than posted by it (``espwire import`` now, pull sources later):
# the envelope names its channel in ``options["channel"]``, and that channel's parser reads the body.
CHANNELS: dict[str, dict[str, Callable[[Envelope], AdaptResult]]] = {
    "pure360": {"ftp": adapt_log, "soap": adapt_batch},
    "recurly_engage": {"s3": adapt_export},
}


def adapt_channel(envelope: Envelope, channel: str) -> AdaptResult:
    """A fetched file's events; an ``unknown_channel`` failure for a channel its provider does not have."""
    parser = CHANNELS.get(envelope.provider, {}).get(channel)
    if parser is None:
        return AdaptResult(failures=[Failure("unknown_channel", f"{envelope.provider} has no channel {channel!r}")])
    return parser(envelope)


def adapter_for(provider: str) -> Adapter:
    """The adapter of a provider; KeyError for a provider espwire does not know."""
    return ADAPTERS[provider]


__all__ = ["ADAPTERS", "CHANNELS", "AdaptResult", "Adapter", "Failure", "adapt_channel", "adapter_for"]
