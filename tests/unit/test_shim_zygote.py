"""The zygote's pure parts: its idle setting and the paths it will bind."""
from __future__ import annotations

import pytest

from pyrunc.shim import zygote


@pytest.mark.parametrize("env, idle", [
    ({}, zygote.DEFAULT_IDLE),
    ({"PYRUNC_SHIM_ZYGOTE_IDLE": ""}, zygote.DEFAULT_IDLE),
    ({"PYRUNC_SHIM_ZYGOTE_IDLE": "0"}, 0.0),          # off
    ({"PYRUNC_SHIM_ZYGOTE_IDLE": "2.5"}, 2.5),
    ({"PYRUNC_SHIM_ZYGOTE_IDLE": "-3"}, 0.0),         # negative: off, not forever
    ({"PYRUNC_SHIM_ZYGOTE_IDLE": "soon"}, zygote.DEFAULT_IDLE),
])
def test_idle_seconds(env, idle):
    assert zygote.idle_seconds(env) == idle


def test_zygote_path_is_one_per_containerd_and_checked():
    a = zygote.zygote_path("/run/containerd/containerd.sock")
    b = zygote.zygote_path("/tmp/other/containerd.sock")
    assert a != b and a == zygote.zygote_path("/run/containerd/containerd.sock")
    assert zygote.is_zygote_path(a) and zygote.is_zygote_path(b)
    assert a.startswith("/run/containerd/s/pyrunc-zygote-")


@pytest.mark.parametrize("path", [
    "/tmp/pyrunc-zygote-" + "0" * 32,
    "/run/containerd/s/pyrunc-zygote-" + "0" * 31,
    "/run/containerd/s/pyrunc-zygote-" + "g" * 32,
    "/run/containerd/s/sub/pyrunc-zygote-" + "0" * 32,
    "/run/containerd/s/../pyrunc-zygote-" + "0" * 32,
    "/run/containerd/s/" + "0" * 64,
])
def test_is_zygote_path_refuses_other_paths(path):
    assert not zygote.is_zygote_path(path)
