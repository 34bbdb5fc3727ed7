"""pyrunc create: set up a container and leave its init waiting for `start`."""
from __future__ import annotations

FLAGS = {
    "bundle": ("str", ""), "console-socket": ("str", ""), "pid-file": ("str", ""),
    "no-pivot": ("bool", False), "no-new-keyring": ("bool", False), "preserve-fds": ("int", 0),
    "pidfd-socket": ("str", ""),
}
ALIASES = {"b": "bundle"}
HELP = """USAGE:
   pyrunc create [command options] <container-id>

Where "<container-id>" is your name for the instance of the container that you
are starting. The name you provide for the container instance must be unique on
your host.

DESCRIPTION:
   The create command creates an instance of a container for a bundle. The bundle
is a directory with a specification file named "config.json" and a root
filesystem. The container's init is left waiting; `pyrunc start` runs the
user's process.

EXAMPLE:
   # pyrunc spec -b /mycontainer && pyrunc create -b /mycontainer mycontainer
   # pyrunc start mycontainer

OPTIONS:
   --bundle value, -b value  path to the root of the bundle directory, defaults to the current directory
   --console-socket value    path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --pid-file value          specify the file to write the process id to
   --no-pivot                do not use pivot root to jail process inside rootfs.
   --no-new-keyring          do not create a new session keyring for the container.
   --preserve-fds value      Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)
"""


def options(opts: dict, mode: str, detach: bool, ctx=None):
    from ..container.launch import CreateOptions
    o = CreateOptions(pidfd_socket=opts["pidfd-socket"], bundle=opts["bundle"], pid_file=opts["pid-file"],
                         console_socket=opts["console-socket"], no_pivot=opts["no-pivot"],
                         no_new_keyring=opts["no-new-keyring"], preserve_fds=opts["preserve-fds"],
                         mode=mode, detach=detach, rootless=ctx.rootless if ctx else "auto",
                         systemd_cgroup=bool(ctx and ctx.systemd_cgroup))
    o.stage = ctx.stage if ctx else None
    return o


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("create", args, 1)
    from ..container.launch import create
    create(ctx.root, args[0], options(opts, "create", True, ctx)).sd.unlock()
    return 0
