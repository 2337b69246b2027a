"""kit/startup_gc.py: the collector paused through a server's start-up, then the survivors frozen."""

from __future__ import annotations

import gc

from mercato.kit import startup_gc


def test_the_collector_is_paused_until_the_store_is_up_then_frozen_survivors_are_skipped() -> None:
    assert gc.isenabled()
    try:
        startup_gc.pause()
        assert not gc.isenabled()
        kept = [object() for _ in range(1000)]
        startup_gc.settle()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()  # the other tests of this process keep the default collector
        gc.enable()
