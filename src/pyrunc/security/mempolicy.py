"""linux.memoryPolicy: the NUMA memory policy of the container's processes.

runc 1.5 (specconv, configs/validate, init_linux.go setupMemoryPolicy):
the mode and flag names and the node list are checked at `create`, with
runc's messages; the container process itself calls set_mempolicy(2)
(mode | flags, nodemask) after personality and before it reports ready, in
the init and in every `exec`'d process, so the policy is inherited across
execve by the user's process and its children. A policy the kernel refuses
(nodes outside the machine's, a flag the mode does not take) is a
`create`/`exec` error: "set_mempolicy: invalid argument".
"""
from __future__ import annotations

from ..errors import ConfigError, PyruncError
from ..linux import consts as C
from .attrs import _goq, cpu_list

MAX_NODE = 1023  # runc's ToCPUSet: a unix.CPUSet holds 1024 bits


def node_list(s: str) -> set[int]:
    """runc's configs.ToCPUSet ("0-3,7"; "" is the empty set), ids up to 1023."""
    return cpu_list(s, MAX_NODE)


def parse(mp: object) -> tuple[int, set[int]]:
    """(mode | flags, nodes) of a linux.memoryPolicy, or runc's error."""
    if not isinstance(mp, dict):
        raise ConfigError("invalid config: linux.memoryPolicy has the wrong type", "linux.memoryPolicy")
    mode_name = mp.get("mode", "")
    mode = C.MPOL_MODES.get(mode_name) if isinstance(mode_name, str) else None
    if mode is None:
        raise ConfigError(f"invalid memory policy mode {_goq(mode_name)}", "linux.memoryPolicy.mode")
    nodes_s = mp.get("nodes", "")
    if not isinstance(nodes_s, str):
        raise ConfigError("invalid config: linux.memoryPolicy.nodes has the wrong type", "linux.memoryPolicy.nodes")
    try:
        nodes = node_list(nodes_s)
    except PyruncError as e:
        raise ConfigError(f"invalid memory policy nodes {_goq(nodes_s)}: {e}", "linux.memoryPolicy.nodes") from e
    flags = mp.get("flags") or []
    if not isinstance(flags, list):
        raise ConfigError("invalid config: linux.memoryPolicy.flags has the wrong type", "linux.memoryPolicy.flags")
    for i, f in enumerate(flags):
        bit = C.MPOL_FLAGS.get(f) if isinstance(f, str) else None
        if bit is None:
            raise ConfigError(f"invalid memory policy flag {_goq(f)}", f"linux.memoryPolicy.flags[{i}]")
        mode |= bit
    # runc's validator: how many nodes each mode takes
    base = mode & 0xFF
    if base in (C.MPOL_MODES["MPOL_DEFAULT"], C.MPOL_MODES["MPOL_LOCAL"]):
        if nodes:
            raise ConfigError(f"memory policy mode requires 0 nodes but got {len(nodes)}", "linux.memoryPolicy.nodes")
    elif base != C.MPOL_MODES["MPOL_PREFERRED"] and not nodes:
        raise ConfigError("memory policy mode requires at least one node but got 0", "linux.memoryPolicy.nodes")
    return mode, nodes


def nodemask(nodes: set[int]) -> bytes | None:
    """The nodemask set_mempolicy(2) reads (None for no nodes), 1024 bits
    as Go's unix.CPUSet."""
    if not nodes:
        return None
    return sum(1 << n for n in nodes).to_bytes((MAX_NODE + 1) // 8, "little")


def apply(mp: dict) -> None:
    """set_mempolicy(2) for the calling process (inherited across execve)."""
    import os

    from ..linux import sys as L
    mode, nodes = parse(mp)
    try:
        L.set_mempolicy(mode, nodemask(nodes))
    except OSError as e:
        raise PyruncError(f"set_mempolicy: {os.strerror(e.errno).lower() if e.errno else e}") from None
