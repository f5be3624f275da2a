"""StoreBackoff: after a failure the store is left alone for a while, twice as long after each failure
in a row up to a ceiling; a success ends it."""

from __future__ import annotations

import pytest

from processors.dedupe import backoff
from processors.dedupe.backoff import StoreBackoff


def test_pauses_double_up_to_the_ceiling_and_a_success_ends_them(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(backoff.time, "monotonic", lambda: now[0])
    pause = StoreBackoff(initial=1.0, ceiling=4.0)
    assert pause.may_try()
    waits = []
    for _ in range(4):
        pause.failed()
        start = now[0]
        while not pause.may_try():
            now[0] += 0.25
        waits.append(now[0] - start)
    assert waits == [1.0, 2.0, 4.0, 4.0]
    pause.failed()
    assert not pause.may_try()
    pause.succeeded()
    assert pause.may_try()
    pause.failed()
    now[0] += 1.0
    assert pause.may_try(), "after a success the next failure starts from the initial pause again"
