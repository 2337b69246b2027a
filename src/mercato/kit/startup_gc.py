"""The cyclic garbage collector around a long-running process's start-up.

Starting a store imports the app and builds its ~160 routes: hundreds of thousands of objects
that live as long as the process. Meanwhile the collector runs again and again only to scan
them anew: about a fifth of start-up CPU (issue 17, PERF-7). So ``mercato serve`` and
``worker`` pause it until the store is up, then collect once and freeze what survived
(``gc.freeze``: later collections skip those objects, which also makes them cheaper while
serving). Only those commands do this; tests and library use keep the default collector.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Around a long-running command: the collector is off until :func:`settle` (called once
    the process serves), and on again however the command ends (a failed start, a test's
    stand-in server that never settles)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def settle() -> None:
    """Once the process serves: collect the start-up's garbage, freeze the rest, collect as usual."""
    gc.collect()
    gc.freeze()
    gc.enable()
