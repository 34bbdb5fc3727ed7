"""Linux capability names and numbers.

config.json names capabilities ("CAP_SYS_ADMIN"); capset(2), prctl(2) and
/proc/<pid>/status speak numbers. This table is the one place that maps
between them. It is a plain tuple (index == number) so importing it costs
nothing; the kernel's own limit is read only when asked for.

The names are those of linux/capability.h (and of runc's features output);
the numbers are the same on every Linux architecture.
"""

from __future__ import annotations

# Index == capability number. Keep in kernel order (linux/capability.h).
CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",  # 0
    "CAP_DAC_OVERRIDE",  # 1
    "CAP_DAC_READ_SEARCH",  # 2
    "CAP_FOWNER",  # 3
    "CAP_FSETID",  # 4
    "CAP_KILL",  # 5
    "CAP_SETGID",  # 6
    "CAP_SETUID",  # 7
    "CAP_SETPCAP",  # 8
    "CAP_LINUX_IMMUTABLE",  # 9
    "CAP_NET_BIND_SERVICE",  # 10
    "CAP_NET_BROADCAST",  # 11
    "CAP_NET_ADMIN",  # 12
    "CAP_NET_RAW",  # 13
    "CAP_IPC_LOCK",  # 14
    "CAP_IPC_OWNER",  # 15
    "CAP_SYS_MODULE",  # 16
    "CAP_SYS_RAWIO",  # 17
    "CAP_SYS_CHROOT",  # 18
    "CAP_SYS_PTRACE",  # 19
    "CAP_SYS_PACCT",  # 20
    "CAP_SYS_ADMIN",  # 21
    "CAP_SYS_BOOT",  # 22
    "CAP_SYS_NICE",  # 23
    "CAP_SYS_RESOURCE",  # 24
    "CAP_SYS_TIME",  # 25
    "CAP_SYS_TTY_CONFIG",  # 26
    "CAP_MKNOD",  # 27
    "CAP_LEASE",  # 28
    "CAP_AUDIT_WRITE",  # 29
    "CAP_AUDIT_CONTROL",  # 30
    "CAP_SETFCAP",  # 31
    "CAP_MAC_OVERRIDE",  # 32
    "CAP_MAC_ADMIN",  # 33
    "CAP_SYSLOG",  # 34
    "CAP_WAKE_ALARM",  # 35
    "CAP_BLOCK_SUSPEND",  # 36
    "CAP_AUDIT_READ",  # 37
    "CAP_PERFMON",  # 38
    "CAP_BPF",  # 39
    "CAP_CHECKPOINT_RESTORE",  # 40
)

#: Highest capability number this table knows.
CAP_LAST_KNOWN: int = len(CAPABILITIES) - 1

#: Name -> number. Names are matched exactly, as runc does ("CAP_" prefix,
#: upper case); a lenient lookup would accept configs runc rejects.
CAP_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(CAPABILITIES)}

_last_cap: int | None = None


def cap_number(name: str) -> int | None:
    """Number of capability `name` ("CAP_KILL" -> 5), None if unknown."""
    return CAP_NUMBERS.get(name)


def cap_name(number: int) -> str | None:
    """Name of capability `number` (5 -> "CAP_KILL"), None if unknown."""
    if 0 <= number <= CAP_LAST_KNOWN:
        return CAPABILITIES[number]
    return None


def last_cap() -> int:
    """Highest capability number the running kernel supports.

    Read from /proc/sys/kernel/cap_last_cap (cached: it cannot change
    while we run). If that file is unreadable (no /proc yet, or a masked
    /proc), fall back to the last capability this table knows, which is
    what runc's capability library assumes on modern kernels.
    """
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _last_cap = int(f.read().strip())
        except (OSError, ValueError):
            _last_cap = CAP_LAST_KNOWN
    return _last_cap


def known_capabilities() -> list[str]:
    """Names both this table and the running kernel know, in number order.

    Capabilities newer than the kernel would fail capset(2)/PR_CAPBSET_DROP
    with EINVAL; capabilities newer than this table have no name we could
    accept in config.json.
    """
    return list(CAPABILITIES[: min(last_cap(), CAP_LAST_KNOWN) + 1])
