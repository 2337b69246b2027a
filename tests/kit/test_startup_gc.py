"""kit/startup_gc.py: the collector paused through a server's start-up, then the survivors frozen;
on again however the start-up ended."""

from __future__ import annotations

import gc

import pytest

from mercato.kit import startup_gc


def test_the_collector_is_paused_until_the_store_is_up_then_frozen_survivors_are_skipped() -> None:
    assert gc.isenabled()
    try:
        with startup_gc.paused():
            assert not gc.isenabled()
            kept = [object() for _ in range(1000)]
            startup_gc.settle()
            assert gc.isenabled()
            assert gc.get_freeze_count() >= len(kept)
        assert gc.isenabled()
    finally:
        gc.unfreeze()  # the other tests of this process keep the default collector


def test_a_start_up_that_fails_before_settling_leaves_the_collector_on() -> None:
    with pytest.raises(RuntimeError), startup_gc.paused():
        assert not gc.isenabled()
        raise RuntimeError("the database could not be reached")
    assert gc.isenabled()
