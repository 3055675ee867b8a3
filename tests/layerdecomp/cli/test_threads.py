"""The commands' CPU threads: the cores other work leaves free, never more than torch's default,
and what the user set through ``OMP_NUM_THREADS`` left alone."""

from __future__ import annotations

import os

import pytest
import torch

from layerdecomp.cli.options import pick_threads


@pytest.fixture
def threads(monkeypatch):
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    torch.set_num_threads(4)
    yield monkeypatch
    torch.set_num_threads(before)


@pytest.mark.parametrize("load, expected", [(0.2, 4), (1.4, 3), (3.0, 1), (9.0, 1)])
def test_the_threads_are_the_cores_left_free(threads, load, expected):
    threads.setattr(os, "getloadavg", lambda: (load, load, load))
    assert pick_threads() == expected and torch.get_num_threads() == expected


def test_never_more_than_torchs_default(threads):
    threads.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    torch.set_num_threads(2)
    assert pick_threads() == 2


def test_a_users_setting_is_left_alone(threads):
    threads.setenv("OMP_NUM_THREADS", "4")
    threads.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert pick_threads() == 4 and torch.get_num_threads() == 4
