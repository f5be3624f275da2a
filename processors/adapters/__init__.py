"""The explicit adapter registry: provider name -> adapter instance."""

from __future__ import annotations

from processors.adapters.base import Adapter, AdaptResult, Failure
from processors.adapters.falconide import FalconideAdapter
from processors.adapters.ipost import IPostAdapter
from processors.adapters.pure360 import Pure360Adapter
from processors.adapters.recurly_engage import RecurlyEngageAdapter
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


def adapter_for(provider: str) -> Adapter:
    """The adapter of a provider; KeyError for a provider espwire does not know."""
    return ADAPTERS[provider]


__all__ = ["ADAPTERS", "AdaptResult", "Adapter", "Failure", "adapter_for"]
