"""pyrunc run: create and start a container, and in the foreground stay with
it until it exits, returning its exit status."""
from __future__ import annotations

from .create import FLAGS as _CREATE_FLAGS

FLAGS = {**_CREATE_FLAGS, "detach": ("bool", False), "keep": ("bool", False),
         "no-subreaper": ("bool", False)}
ALIASES = {"b": "bundle", "d": "detach"}
HELP = """USAGE:
   pyrunc run [command options] <container-id>

DESCRIPTION:
   The run command creates an instance of a container for a bundle and starts
it. In the foreground pyrunc forwards signals to the container, proxies its
terminal, and exits with the container's exit status (128+N when it was killed
by signal N), deleting the container unless --keep is given.

EXAMPLE:
   # cd /mycontainer && pyrunc run mycontainer
   # pyrunc run -d --pid-file /run/my.pid -b /mycontainer mycontainer

OPTIONS:
   --bundle value, -b value  path to the root of the bundle directory, defaults to the current directory
   --console-socket value    path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --detach, -d              detach from the container's process
   --keep                    do not delete the container after it exits
   --pid-file value          specify the file to write the process id to
   --no-subreaper            disable the use of the subreaper used to reap reparented processes
   --no-pivot                do not use pivot root to jail process inside rootfs.
   --no-new-keyring          do not create a new session keyring for the container.
   --preserve-fds value      Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("run", args, 1)
    from ..container.run import run as run_container
    from .create import options
    return run_container(ctx.root, args[0], options(opts, "run", opts["detach"], ctx), keep=opts["keep"])
