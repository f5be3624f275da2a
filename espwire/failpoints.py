"""Failpoints: named places where a test can make a process die on purpose (fault-injection tests).

``ESPWIRE_FAILPOINT=<name>`` makes the process exit at once (no cleanup, like SIGKILL) the first
time it passes ``<name>``. Unset, a failpoint costs one dict lookup.
"""

from __future__ import annotations

import os

EXIT_CODE = 70


def failpoint(name: str) -> None:
    if os.environ.get("ESPWIRE_FAILPOINT") == name:
        os._exit(EXIT_CODE)
