"""One process trains a run at a time: the lock says who holds it, a second taker waits a bounded
time and then says for whom it waited, and a released lock is free again."""

from __future__ import annotations

import os

import pytest

from tunelab.errors import TunelabError
from tunelab.experiment.locks import RunLock


def test_a_held_lock_is_not_taken_twice_and_is_free_once_released(tmp_path):
    first, second = RunLock(tmp_path, "lora-s0-abc"), RunLock(tmp_path, "lora-s0-abc")
    assert first.try_acquire()
    assert not second.try_acquire()
    assert str(os.getpid()) in second.holder()
    first.release()
    assert second.try_acquire()
    second.release()


def test_another_runs_lock_is_its_own(tmp_path):
    with RunLock(tmp_path, "lora-s0-abc"):
        other = RunLock(tmp_path, "full-s0-abc")
        assert other.try_acquire()
        other.release()


def test_a_taker_that_waits_too_long_names_the_holder(tmp_path):
    with RunLock(tmp_path, "lora-s0-abc"):
        with pytest.raises(TunelabError, match=r"^run lora-s0-abc is still held by .* after waiting 0 s"):
            RunLock(tmp_path, "lora-s0-abc").acquire(timeout=0.2)


def test_a_released_lock_cannot_be_taken_again(tmp_path):
    lock = RunLock(tmp_path, "lora-s0-abc")
    with lock:
        pass
    with pytest.raises(RuntimeError, match="cannot be acquired again"):
        lock.try_acquire()
