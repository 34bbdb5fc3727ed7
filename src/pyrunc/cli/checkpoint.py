"""pyrunc checkpoint: save a running container's state with CRIU (runc's
flags and checks; see criu/checkpoint.py)."""
from __future__ import annotations

FLAGS: dict = {
    "image-path": ("str", ""), "work-path": ("str", ""), "parent-path": ("str", ""),
    "leave-running": ("bool", False), "tcp-established": ("bool", False),
    "tcp-skip-in-flight": ("bool", False), "link-remap": ("bool", False), "ext-unix-sk": ("bool", False),
    "shell-job": ("bool", False), "lazy-pages": ("bool", False), "status-fd": ("int", -1),
    "page-server": ("str", ""), "file-locks": ("bool", False), "pre-dump": ("bool", False),
    "manage-cgroups-mode": ("str", ""), "empty-ns": ("list", []), "auto-dedup": ("bool", False),
}
HELP = """USAGE:
   pyrunc checkpoint [command options] <container-id>

Where "<container-id>" is the name for the instance of the container to be
checkpointed.

DESCRIPTION:
   The checkpoint command saves the state of the container instance, with
CRIU (`criu swrk`, which must be installed and work on this kernel: see
`criu check`). Unless --leave-running or --pre-dump is given, the container
is stopped and deleted once its state is saved.

EXAMPLE:
   # pyrunc checkpoint --image-path /var/lib/ck/c1 c1
   # pyrunc restore --image-path /var/lib/ck/c1 -b /mycontainer -d c1

OPTIONS:
   --image-path value           path for saving criu image files (default: ./checkpoint)
   --work-path value            path for saving work files and logs
   --parent-path value          path for previous criu image files in pre-dump
   --leave-running              leave the process running after checkpointing
   --tcp-established            allow open tcp connections
   --tcp-skip-in-flight         skip in-flight tcp connections
   --link-remap                 allow one to link unlinked files back when possible
   --ext-unix-sk                allow external unix sockets
   --shell-job                  allow shell jobs
   --lazy-pages                 use userfaultfd to lazily restore memory pages
   --status-fd value            criu writes \\0 to this FD once lazy-pages is ready (default: -1)
   --page-server value          ADDRESS:PORT of the page server
   --file-locks                 handle file locks, for safety
   --pre-dump                   dump container's memory information only, leave the container running after this
   --manage-cgroups-mode value  cgroups mode: soft|full|strict|ignore (default: soft)
   --empty-ns value             create a namespace, but don't restore its properties
   --auto-dedup                 enable auto deduplication of memory images
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("checkpoint", args, 1)
    _rootless_warning()
    from ..criu.checkpoint import checkpoint
    checkpoint(ctx.root, args[0], opts)
    return 0


def _rootless_warning() -> None:
    import os
    from ..cgroups import running_in_userns
    if os.geteuid() != 0 or running_in_userns():
        from .. import log
        log.warn("pyrunc checkpoint is untested with rootless containers")
