"""The unprivileged user the rootless tests run as (integration/test_rootless.py,
clients/test_podman_rootless.py): created if missing, with a subordinate id
range in /etc/subuid and /etc/subgid. Not a test module: pytest collects
only tests/unit, tests/integration and tests/clients."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

USER = "pyrunc-rl"
SUB_START, SUB_COUNT = 300000, 65536


def ensure_user() -> pwd.struct_passwd:
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        if shutil.which("useradd") is None:
            pytest.skip("useradd is not available to create the test user")
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", USER],
                       check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
    for path in ("/etc/subuid", "/etc/subgid"):
        lines = Path(path).read_text().splitlines() if os.path.exists(path) else []
        lines = [ln for ln in lines if not ln.startswith(f"{USER}:")]
        lines.append(f"{USER}:{SUB_START}:{SUB_COUNT}")
        Path(path).write_text("\n".join(lines) + "\n")
    return pw
