"""The collector is paused only for the block: a pass that fails must not leave a
long-running process (watch, serve) without cyclic garbage collection."""

from __future__ import annotations

import gc

import pytest

from reconciler.gc_pause import collector_paused


def test_paused_inside_and_enabled_again_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("pass failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
