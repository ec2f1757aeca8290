"""torch's CPU thread count: all cores but one by default, so the GUI and other programs keep one."""

import threading

import pytest

from studio.engine import threads
from studio.engine.threads import ENV_VAR, apply_cpu_threads, cpu_threads


@pytest.fixture
def no_thread_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return monkeypatch


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (8, 7), (64, 63)])
def test_automatic_leaves_one_core_free(no_thread_env, cores, expected):
    no_thread_env.setattr(threads, "usable_cores", lambda: cores)
    assert cpu_threads(None) == expected
    assert cpu_threads(0) == expected  # 0 is "automatic", as in the settings


def test_explicit_choices_win_in_order(no_thread_env):
    no_thread_env.setattr(threads, "usable_cores", lambda: 16)
    no_thread_env.setenv("OMP_NUM_THREADS", "2")
    assert cpu_threads() == 2  # whoever set OMP_NUM_THREADS meant it
    no_thread_env.setenv(ENV_VAR, "5")
    assert cpu_threads() == 5
    assert cpu_threads(3) == 3  # --threads / the setting beats both
    no_thread_env.setenv(ENV_VAR, "lots")
    assert cpu_threads() == 2  # a bad value is ignored, not fatal


def test_usable_cores_is_within_what_the_process_may_use():
    assert 1 <= threads.usable_cores() <= (__import__("os").cpu_count() or 1)


def test_apply_sets_torch_threads_in_the_calling_thread_and_survives_a_second_call():
    import torch

    seen = []

    def engine_thread():
        apply_cpu_threads(1)
        torch.ones(64, 64) @ torch.ones(64, 64)  # parallel work: inter-op count is now frozen
        apply_cpu_threads(1)  # must not raise RuntimeError
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=engine_thread)
    worker.start()
    worker.join(30)
    assert seen == [1]
