"""How long to leave a store alone after it failed, for callers that go on without it.

A store that hangs (packets dropped, not refused) costs a whole client timeout per call. A caller that
can do without the store (dedupe with ``on_store_error = "pass"``, the bot-click timing rules) asks
``may_try()`` first and skips the call while the last failure is recent: the pause doubles with each
failure in a row (``initial`` up to ``ceiling`` seconds) and a success ends it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class StoreBackoff:
    initial: float = 1.0
    ceiling: float = 30.0
    _delay: float = 0.0
    _until: float = 0.0

    def may_try(self) -> bool:
        return time.monotonic() >= self._until

    def failed(self) -> None:
        self._delay = min(self.ceiling, max(self.initial, self._delay * 2))
        self._until = time.monotonic() + self._delay

    def succeeded(self) -> None:
        self._delay = 0.0
        self._until = 0.0
