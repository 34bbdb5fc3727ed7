"""The state store: <root>/<id>/state.json, its lock, and status derivation.

A container's status is never stored: it is derived each time from the live
init process (guarded against pid reuse by its start time), the exec fifo
(present until `start`) and the freezer, the way runc derives it.
"""
from __future__ import annotations

import fcntl
import os
import time

from ..errors import ContainerNotFound, PyruncError
from ..fastjson import dumps, loads

STATE_FILE = "state.json"
# what create is about to make, before it makes it (StateDir.record_plan)
PLAN_XATTR = "user.pyrunc.plan"
PLAN_FILE = "plan.json"
EXEC_FIFO = "exec.fifo"
OCI_VERSION = "1.2.0"


def validate_id(cid: str) -> None:
    """runc's rule: [A-Za-z0-9_+.-]+, not . or .., and it must fit a file name."""
    ok = 0 < len(cid) <= 255 and cid not in (".", "..") and \
        all(c.isascii() and (c.isalnum() or c in "_+-.") for c in cid)
    if not ok:
        raise PyruncError("invalid container ID format")


def read_stat(pid: int) -> bytes:
    """/proc/<pid>/stat in one read: open, read, close, not the seven calls
    of a buffered open() (every status derivation reads it). The line is
    well under 4 KiB and the kernel makes it whole on the first read."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the process is gone or a zombie."""
    try:
        data = read_stat(pid)
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def open_pidfd(pid: int, start: int | None) -> int:
    """A pidfd of the process `pid` that started at `start` (field 22 of its
    stat), or -1 if it is gone or the pid is someone else's now. A zombie
    counts as itself (its pid cannot be reused before it is reaped); the
    start time is read after the pidfd exists, so the fd names that process."""
    if not pid:
        return -1
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return -1
    try:
        data = read_stat(pid)
        if int(data[data.rfind(b")") + 2:].split()[19]) == start:
            return fd
    except (OSError, ValueError, IndexError):
        pass
    os.close(fd)
    return -1


def wait_pidfd(fd: int, timeout: float | None) -> bool:
    """Block until the process behind a pidfd exits (a zombie has exited);
    True if it did within `timeout` seconds (None: no limit)."""
    import select
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(None if timeout is None else max(0, int(timeout * 1000))))


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC, as runc writes `created`."""
    sec, frac = divmod(ns, 1_000_000_000)
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac:
        s += "." + f"{frac:09d}".rstrip("0")
    return s + "Z"


class StateDir:
    """One container's directory under the root, with an flock held while open."""

    def __init__(self, root: str, cid: str) -> None:
        validate_id(cid)
        self.root = root
        self.id = cid
        self.path = os.path.join(root, cid)
        self._lock_fd: int | None = None

    # -- creation and locking -------------------------------------------------
    def create(self) -> None:
        """Make the directory exclusively; an existing id is an error."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise PyruncError(f"container with id exists: {self.id}") from None
        self.lock()

    def exists(self) -> bool:
        return os.path.exists(os.path.join(self.path, STATE_FILE))

    def lock(self, shared: bool = False) -> None:
        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise ContainerNotFound(self.id) from e
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        self._lock_fd = fd

    @property
    def fd(self) -> int | None:
        """The lock's fd (a child forked now must close it)."""
        return self._lock_fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the state file -------------------------------------------------------
    def load(self) -> dict:
        try:
            fd = os.open(os.path.join(self.path, STATE_FILE), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise ContainerNotFound(self.id) from e
        try:  # os-level reads: a buffered open() adds four calls per load
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        try:
            return loads(b"".join(chunks))
        except ValueError:
            raise PyruncError(f"container {self.id}: corrupt state file") from None

    def save(self, state: dict, name: str = STATE_FILE) -> None:
        """Atomic replace, so a concurrent reader never sees half a file."""
        tmp = os.path.join(self.path, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, dumps(state).encode())
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.path, name))

    def record_plan(self, plan: dict) -> None:
        """Record what create is about to make (its cgroup paths, a systemd
        unit, a host mount) before it makes it, for a `delete` after a
        create killed before its state exists. An extended attribute of the
        locked directory: no new file on every create (a file creation costs
        up to a millisecond on a busy ext4 /run); a file where the file
        system keeps no user xattrs."""
        data = dumps(plan).encode()
        if self._lock_fd is not None:  # not locked: the file
            try:
                os.setxattr(self._lock_fd, PLAN_XATTR, data)
                return
            except OSError:
                pass
        self.save(plan, PLAN_FILE)

    def load_plan(self) -> dict | None:
        """The plan record_plan left, or None."""
        try:
            data = os.getxattr(self.path, PLAN_XATTR)
        except OSError:
            try:
                with open(os.path.join(self.path, PLAN_FILE), "rb") as f:
                    data = f.read()
            except OSError:
                return None
        try:
            return loads(data)
        except ValueError:
            return None

    def remove(self) -> None:
        """Remove the directory (it holds only files we made)."""
        try:
            for name in os.listdir(self.path):
                os.unlink(os.path.join(self.path, name))
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        self.unlock()

    @property
    def fifo(self) -> str:
        return os.path.join(self.path, EXEC_FIFO)


def load(root: str, cid: str, shared: bool = False) -> tuple[StateDir, dict, str]:
    """Lock, load and derive the status of a container."""
    sd, st = load_state(root, cid, shared)
    return sd, st, status_of(st, sd.fifo)


def load_state(root: str, cid: str, shared: bool = False) -> tuple[StateDir, dict]:
    """Lock and load a container's state, for a caller that needs no status."""
    sd = StateDir(root, cid)
    if not os.path.isdir(sd.path):
        raise ContainerNotFound(cid)
    sd.lock(shared=shared)
    return sd, sd.load()


def state_doc(root: str, cid: str) -> dict:
    sd, st, status = load(root, cid, shared=True)
    sd.unlock()
    return oci_state(st, status)


def status_of(state: dict, fifo_path: str) -> str:
    """created | running | paused | stopped, from the live system."""
    pid = state.get("pid", 0)
    if pid <= 0 or proc_start_time(pid) != state.get("init_start"):
        return "stopped"
    freezer = state.get("freezer")
    if freezer and _frozen(freezer):
        return "paused"
    return "created" if os.path.exists(fifo_path) else "running"


def _frozen(path: str) -> bool:
    for name in ("cgroup.freeze", "freezer.state"):  # v2, v1
        try:
            fd = os.open(os.path.join(path, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            v = os.read(fd, 64).strip()  # one word
        except OSError:
            continue
        finally:
            os.close(fd)
        return v in (b"1", b"FROZEN", b"FREEZING")
    return False


def oci_state(state: dict, status: str) -> dict:
    """The runtime-spec state document, shaped as runc prints it."""
    doc = {
        "ociVersion": state.get("ociVersion", OCI_VERSION),
        "id": state["id"],
        "pid": state["pid"] if status != "stopped" else 0,
        "status": status,
        "bundle": state["bundle"],
        "rootfs": state["rootfs"],
        "created": state["created"],
    }
    if state.get("annotations"):  # runc's field order: annotations, then owner
        doc["annotations"] = state["annotations"]
    doc["owner"] = state.get("owner", "")
    return doc


class State:
    """A container's state as the runtime-spec defines it (runc's `state`
    output): oci_version, id, status, pid (0 once stopped), bundle, rootfs,
    created (RFC 3339), owner, annotations. to_dict() is exactly the JSON
    `pyrunc state` prints; state["pid"] (the JSON names) reads it too."""

    __slots__ = ("oci_version", "id", "status", "pid", "bundle", "rootfs", "created", "owner", "annotations")

    def __init__(self, oci_version: str, id: str, status: str, pid: int, bundle: str, rootfs: str,
                 created: str, owner: str = "", annotations: dict[str, str] | None = None) -> None:
        self.oci_version, self.id, self.status, self.pid = oci_version, id, status, pid
        self.bundle, self.rootfs, self.created, self.owner = bundle, rootfs, created, owner
        self.annotations = annotations or {}

    @classmethod
    def from_dict(cls, doc: dict) -> "State":
        """From the state document (oci_state's, or `pyrunc state`'s JSON)."""
        return cls(doc["ociVersion"], doc["id"], doc["status"], doc["pid"], doc["bundle"], doc["rootfs"],
                   doc["created"], doc.get("owner", ""), doc.get("annotations"))

    def to_dict(self) -> dict:
        doc = {"ociVersion": self.oci_version, "id": self.id, "pid": self.pid, "status": self.status,
               "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created}
        if self.annotations:  # runc's field order: annotations, then owner
            doc["annotations"] = dict(self.annotations)
        doc["owner"] = self.owner
        return doc

    def __getitem__(self, key: str):
        """The JSON names, as when state() returned the dict."""
        return self.to_dict()[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"State(id={self.id!r}, status={self.status!r}, pid={self.pid}, bundle={self.bundle!r})"


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, STATE_FILE)))
    except FileNotFoundError:
        return []
