"""runc's prepareEnv (libcontainer/env.go): names once, the last value, HOME
from the user's passwd entry when missing or empty."""
from __future__ import annotations

import pytest

from pyrunc.errors import PyruncError
from pyrunc.security import process as P


@pytest.fixture
def passwd(tmp_path, monkeypatch):
    f = tmp_path / "passwd"
    f.write_text("root:x:0:0:root:/root:/bin/sh\n\n  user:x:1000:1000::/home/user:/bin/sh  \nshort:x:7\n")
    monkeypatch.setattr(P, "PASSWD", str(f))
    return f


@pytest.mark.parametrize("env, uid, want", [
    (None, 0, []),  # no env at all: no HOME either (runc: nil in, nil out)
    ([], 0, ["HOME=/root"]),
    (["HOME=/x"], 0, ["HOME=/x"]),
    (["HOME="], 1000, ["HOME=/home/user"]),
    (["HOME=/x", "HOME="], 0, ["HOME=/root"]),
    (["A=1", "B=2", "A=3"], 0, ["B=2", "A=3", "HOME=/root"]),
    (["A=1", "A="], 4242, ["A=", "HOME=/"]),  # no entry: "/"
    (["X=a=b"], 7, ["X=a=b", "HOME="]),  # an entry without a home field
])
def test_prepare_env(passwd, env, uid, want):
    assert P.prepare_env(env, uid) == want


@pytest.mark.parametrize("env, msg", [
    (["NOEQ"], "invalid environment variable: missing '='"),
    (["=x"], "invalid environment variable: name cannot be empty"),
    (["A=\0"], 'invalid environment variable "A": contains nul byte'),
])
def test_prepare_env_errors(passwd, env, msg):
    with pytest.raises(PyruncError, match=msg.replace("(", r"\(")):
        P.prepare_env(env, 0)


def test_no_passwd_file(monkeypatch, tmp_path):
    monkeypatch.setattr(P, "PASSWD", str(tmp_path / "none"))
    assert P.prepare_env([], 0) == ["HOME=/"]


def test_passwd_bytes_that_are_not_utf8_elsewhere(monkeypatch, tmp_path):
    """Only the matching entry is decoded: a Latin-1 name on another line
    does not cost the user their home."""
    f = tmp_path / "passwd"
    f.write_bytes(b"m\xfcller:x:1001:1001::/home/m:/bin/sh\nroot:x:0:0:root:/root:/bin/sh\n")
    monkeypatch.setattr(P, "PASSWD", str(f))
    assert P.prepare_env([], 0) == ["HOME=/root"]
