"""Config and filesystem helpers for tests that run containers in a user
namespace (container root = host uid 100000)."""
from __future__ import annotations

import os

HOST_ROOT = 100000


def userns_config(c: dict) -> None:
    """A user namespace mapping 0-65535 to 100000+, and /sys bound from the
    host (a user namespace may not mount sysfs of a network it does not own)."""
    c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "user"] + [{"type": "user"}]
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]
    c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup", "/host")]
    c["mounts"].append({"destination": "/sys", "type": "bind", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})


def make_reachable(*paths) -> None:
    """Let the container's root (an unprivileged host uid) traverse to these:
    pytest's temporary directories are 0700."""
    for p in paths:
        for parent in [p, *p.parents]:
            if str(parent) in ("/", "/dev", "/tmp"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o005)
