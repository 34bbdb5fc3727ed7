"""`checkpoint` / `restore` flags -> CRIU options, checked as runc 1.5 checks
them (checkpoint.go criuOptions/prepareImagePaths, criu_linux.go
criuCgMode), with runc's messages. Nothing here talks to CRIU."""
from __future__ import annotations

import os

from ..errors import PyruncError
from .proto import CG_MODES

CLONE_NEWNET = 0x40000000

# --manage-cgroups-mode -> enum criu_cg_mode ("" is CRIU's default)
CG_MODE_VALUES = {"": CG_MODES["DEFAULT"], "soft": CG_MODES["SOFT"], "full": CG_MODES["FULL"],
                  "strict": CG_MODES["STRICT"], "ignore": CG_MODES["IGNORE"]}


class CriuOpts:
    """runc's libcontainer.CriuOpts: what the command line asked for."""

    __slots__ = ("images_dir", "work_dir", "parent_image", "leave_running", "tcp_established",
                 "tcp_skip_in_flight", "link_remap", "ext_unix_sk", "shell_job", "file_locks", "pre_dump",
                 "auto_dedup", "lazy_pages", "status_fd", "lsm_profile", "lsm_mount_context",
                 "cg_mode", "page_server", "empty_ns", "created_images_dir")

    def __init__(self) -> None:
        self.images_dir = self.work_dir = self.parent_image = ""
        self.leave_running = self.tcp_established = self.tcp_skip_in_flight = False
        self.link_remap = self.ext_unix_sk = self.shell_job = self.file_locks = False
        self.pre_dump = self.auto_dedup = self.lazy_pages = False
        self.status_fd = -1
        self.lsm_profile = self.lsm_mount_context = ""
        self.cg_mode = CG_MODES["DEFAULT"]
        self.page_server: tuple[str, int] | None = None
        self.empty_ns = CLONE_NEWNET
        self.created_images_dir = False  # made by us: removed again if CRIU cannot start


def page_server(value: str) -> tuple[str, int]:
    """ADDRESS:PORT as Go's net.SplitHostPort reads it ([v6]:port too)."""
    bad = PyruncError("Use --page-server ADDRESS:PORT to specify page server")
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or value[end + 1:end + 2] != ":":
            raise bad
        host, port = value[1:end], value[end + 2:]
        if "[" in host or "]" in port:
            raise bad
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:
            raise bad
    if not host or not port:
        raise bad
    try:
        n = int(port, 10) if port.lstrip("+-").isdigit() else int("x")
    except ValueError:
        raise PyruncError("Invalid port number") from None
    if not -(1 << 31) <= n < 1 << 31:  # Go: strconv.Atoi, then int32()
        raise PyruncError("Invalid port number")
    return host, n


def empty_ns(values: list[str]) -> int:
    """--empty-ns: only "network" is supported (and always set, as runc:
    runc does not manage network devices)."""
    mask = CLONE_NEWNET
    for ns in values:
        if ns != "network":
            raise PyruncError(f'namespace "{ns}" is not supported')
        mask |= CLONE_NEWNET
    return mask


def cg_mode(value: str) -> int:
    try:
        return CG_MODE_VALUES[value]
    except KeyError:
        raise PyruncError("invalid manage-cgroups-mode value") from None


def image_paths(image_path: str, parent_path: str) -> tuple[str, str, bool]:
    """runc's prepareImagePaths: the image directory (default ./checkpoint) is
    created; --parent-path must be relative and name a directory under it.
    Returns (images dir, parent path, whether we created the images dir)."""
    image_path = image_path or os.path.join(os.getcwd(), "checkpoint")
    created = not os.path.lexists(image_path)
    try:
        os.makedirs(image_path, 0o700, exist_ok=True)
    except OSError as e:
        raise PyruncError(f"mkdir {e.filename or image_path}: {os.strerror(e.errno or 0).lower()}") from None
    if not os.path.isdir(image_path):
        raise PyruncError(f"mkdir {image_path}: not a directory")
    if not parent_path:
        return image_path, "", created
    try:
        if parent_path.startswith("/"):
            raise PyruncError("--parent-path must be relative")
        real = os.path.join(image_path, parent_path)
        try:
            st = os.stat(real)
        except OSError as e:
            raise PyruncError(f"invalid --parent-path: stat {real}: {os.strerror(e.errno or 0).lower()}") from None
        import stat
        if not stat.S_ISDIR(st.st_mode):
            raise PyruncError(f"invalid --parent-path: {real}: not a directory")
    except PyruncError:
        if created:
            remove_if_empty(image_path)
        raise
    return image_path, parent_path, created


def remove_if_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def from_flags(opts: dict, restore: bool = False) -> CriuOpts:
    """The command's flags -> CriuOpts (runc's criuOptions), everything that
    can be checked without CRIU checked; the images dir exists afterwards."""
    o = CriuOpts()
    o.cg_mode = cg_mode(opts.get("manage-cgroups-mode") or "")  # runc: later, in Checkpoint/Restore
    if opts.get("page-server"):
        o.page_server = page_server(opts["page-server"])
    o.empty_ns = empty_ns(opts.get("empty-ns") or [])
    o.images_dir, o.parent_image, o.created_images_dir = image_paths(
        opts.get("image-path") or "", "" if restore else opts.get("parent-path") or "")
    o.work_dir = opts.get("work-path") or ""
    for flag, attr in (("leave-running", "leave_running"), ("tcp-established", "tcp_established"),
                       ("tcp-skip-in-flight", "tcp_skip_in_flight"), ("link-remap", "link_remap"),
                       ("ext-unix-sk", "ext_unix_sk"), ("shell-job", "shell_job"), ("file-locks", "file_locks"),
                       ("pre-dump", "pre_dump"), ("auto-dedup", "auto_dedup"), ("lazy-pages", "lazy_pages")):
        setattr(o, attr, bool(opts.get(flag)))
    o.status_fd = int(opts.get("status-fd", -1))
    o.lsm_profile = opts.get("lsm-profile") or ""
    o.lsm_mount_context = opts.get("lsm-mount-context") or ""
    return o


def check_status_fd(fd: int) -> None:
    """runc (with --lazy-pages): the fd must be open and writable."""
    import fcntl
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError as e:
        raise PyruncError(f"invalid --status-fd argument {fd}: {os.strerror(e.errno or 0).lower()}") from None
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise PyruncError(f"invalid --status-fd argument {fd}: not writable")
