"""pyrunc restore: a container from a checkpoint made by `pyrunc checkpoint`
(runc's flags and checks; see criu/restore.py)."""
from __future__ import annotations

FLAGS: dict = {
    "console-socket": ("str", ""), "image-path": ("str", ""), "work-path": ("str", ""),
    "tcp-established": ("bool", False), "ext-unix-sk": ("bool", False), "shell-job": ("bool", False),
    "file-locks": ("bool", False), "manage-cgroups-mode": ("str", ""), "bundle": ("str", ""),
    "detach": ("bool", False), "pid-file": ("str", ""), "no-subreaper": ("bool", False),
    "no-pivot": ("bool", False), "empty-ns": ("list", []), "auto-dedup": ("bool", False),
    "lazy-pages": ("bool", False), "lsm-profile": ("str", ""), "lsm-mount-context": ("str", ""),
}
ALIASES = {"b": "bundle", "d": "detach"}
HELP = """USAGE:
   pyrunc restore [command options] <container-id>

Where "<container-id>" is the name for the instance of the container to be
restored.

DESCRIPTION:
   Restores the saved state of the container instance that was previously saved
using the pyrunc checkpoint command, with CRIU (which must be installed and
work on this kernel: see `criu check`). In the foreground pyrunc stays with
the restored container and exits with its exit status, as `run` does.

EXAMPLE:
   # pyrunc restore --image-path /var/lib/ck/c1 -b /mycontainer -d c1

OPTIONS:
   --console-socket value       path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --image-path value           path to criu image files for restoring (default: ./checkpoint)
   --work-path value            path for saving work files and logs
   --tcp-established            allow open tcp connections
   --ext-unix-sk                allow external unix sockets
   --shell-job                  allow shell jobs
   --file-locks                 handle file locks, for safety
   --manage-cgroups-mode value  cgroups mode: soft|full|strict|ignore (default: soft)
   --bundle value, -b value     path to the root of the bundle directory
   --detach, -d                 detach from the container's process
   --pid-file value             specify the file to write the process id to
   --no-subreaper               disable the use of the subreaper used to reap reparented processes
   --no-pivot                   do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk
   --empty-ns value             create a namespace, but don't restore its properties
   --auto-dedup                 enable auto deduplication of memory images
   --lazy-pages                 use userfaultfd to lazily restore memory pages
   --lsm-profile value          Specify an LSM profile to be used during restore in the form of TYPE:NAME.
   --lsm-mount-context value    Specify an LSM mount context to be used during restore.
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("restore", args, 1)
    import os
    from ..cgroups import running_in_userns
    if os.geteuid() != 0 or running_in_userns():
        from .. import log
        log.warn("pyrunc checkpoint is untested with rootless containers")
    from ..criu.restore import RestoreOptions, restore
    ro = RestoreOptions(bundle=opts["bundle"], detach=opts["detach"], pid_file=opts["pid-file"],
                        console_socket=opts["console-socket"], no_subreaper=opts["no-subreaper"],
                        no_pivot=opts["no-pivot"], rootless=ctx.rootless, systemd_cgroup=ctx.systemd_cgroup)
    return restore(ctx.root, args[0], opts, ro)
