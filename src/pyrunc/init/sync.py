"""The sync channel between the runtime parent and its children.

One SOCK_SEQPACKET socketpair: every message is one packet, a one-byte tag
and a payload, optionally carrying fds (SCM_RIGHTS). EOF means the other side
died, which each side turns into a clean failure instead of a hang.

The message types are the constants of `Msg` below (each one byte on the
wire); no code spells a tag itself. `create`/`run` (container/launch.py
serves the parent's side, init/child.py the children's) and `exec`
(container/exec.py, both sides) share them.
"""
from __future__ import annotations

import _socket

from ..errors import PyruncError


# room for the fds of one message: the cgroup join sends one per v1 hierarchy
_CMSG = _socket.CMSG_SPACE(4 * 64)


class Msg:
    """The sync protocol's message types. Child -> parent requests and
    reports, parent -> child replies; `EOF` is what recv() returns when the
    other side closed (exec'd, exited or died)."""

    # parent -> stage child: the InitArgs (init/stage.py), inline or in a memfd
    ARGS = "A"
    # child: the user namespace is unshared, write its uid/gid maps; parent: done
    USERNS = "U"
    USERNS_DONE = "u"
    # child: the time namespace is unshared, write its offsets; parent: done
    TIMENS = "O"
    TIMENS_DONE = "o"
    # child: the init's (exec: the process's) host pid; the parent joins it
    # to the cgroup and answers CGROUP_JOINED, payload "<pid>\n<file>...",
    # with the v1 hierarchies' `tasks` fds for the init to join itself
    INIT_PID = "P"
    CGROUP_JOINED = "j"
    # child: "<mount index> idmap|open", a mount source only the host side
    # can open (rootfs/idmap.py); parent: its fd, or none if it cannot help
    MOUNT_SOURCE = "I"
    MOUNT_SOURCE_FD = "M"
    # child: mounts done (runc's procHooks): the parent writes the cgroup
    # resources and runs the prestart/createRuntime hooks; parent: done
    HOOKS = "H"
    HOOKS_DONE = "h"
    # child: the terminal's master end (one fd)
    CONSOLE = "T"
    # child: set up, waiting for CREATED (create) or GO (run, exec)
    READY = "R"
    # parent: the state is written, become the user and wait on the exec fifo
    CREATED = "k"
    # parent: exec the user's process now
    GO = "g"
    # either side: a one-line error; the sender then exits
    ERROR = "E"
    EOF = ""


class Channel:
    def __init__(self, sock) -> None:
        self.sock = sock
        self.stash: list[tuple[str, bytes, list[int]]] = []
        # set once the parent has finished with us and left (after create):
        # from then on nobody reads our errors from this channel
        self.detached = False

    def send(self, tag: str, payload: bytes | str = b"", fds: list[int] | None = None) -> None:
        data = tag.encode() + (payload.encode() if isinstance(payload, str) else payload)
        if fds:
            raw = b"".join(fd.to_bytes(4, "little", signed=True) for fd in fds)
            self.sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, raw)])
        else:
            self.sock.send(data)

    def recv(self) -> tuple[str, bytes, list[int]]:
        """(tag, payload, fds); tag '' on EOF."""
        fds: list[int] = []
        try:
            data, anc, flags, _ = self.sock.recvmsg(65536, _CMSG)
        except ConnectionResetError:
            # the peer died with our last message unread: Linux reports that
            # once, before the messages it sent us (its error text); read on
            try:
                data, anc, flags, _ = self.sock.recvmsg(65536, _CMSG)
            except OSError:
                return "", b"", fds
        for level, typ, cdata in anc:
            if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
                fds += [int.from_bytes(cdata[i:i + 4], "little", signed=True)
                        for i in range(0, len(cdata) - 3, 4)]
        if flags & _socket.MSG_CTRUNC:  # fds lost: never act on part of them
            import os
            for fd in fds:
                os.close(fd)
            raise PyruncError("sync message with more file descriptors than expected")
        if not data:
            return "", b"", fds
        return chr(data[0]), data[1:], fds

    def expect(self, tag: str) -> bytes:
        return self.expect_msg(tag)[0]

    def expect_msg(self, tag: str) -> tuple[bytes, list[int]]:
        """Wait for `tag` from the parent; any other answer ends this child.
        The cgroup ack CGROUP_JOINED comes unasked, so it is set aside until wanted."""
        for i, (t, payload, fds) in enumerate(self.stash):
            if t == tag:
                del self.stash[i]
                return payload, fds
        while True:
            got, payload, fds = self.recv()
            if got == tag:
                return payload, fds
            if got == Msg.CGROUP_JOINED:
                self.stash.append((got, payload, fds))
                continue
            if got == Msg.ERROR:
                raise PyruncError(payload.decode(errors="replace"))
            raise PyruncError("runtime parent went away" if not got else f"unexpected sync message {got!r}")

    def close(self) -> None:
        self.sock.close()
