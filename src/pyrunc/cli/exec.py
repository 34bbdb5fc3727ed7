"""pyrunc exec: run a new process inside a running container."""
from __future__ import annotations

FLAGS = {
    "console-socket": ("str", ""), "pidfd-socket": ("str", ""), "cwd": ("str", ""),
    "env": ("list", []), "tty": ("bool", False), "user": ("str", ""),
    "additional-gids": ("list", []), "process": ("str", ""), "detach": ("bool", False),
    "pid-file": ("str", ""), "process-label": ("str", ""), "apparmor": ("str", ""),
    "no-new-privs": ("bool", False), "cap": ("list", []), "preserve-fds": ("int", 0),
    "cgroup": ("list", []), "ignore-paused": ("bool", False),
}
ALIASES = {"e": "env", "t": "tty", "u": "user", "g": "additional-gids", "p": "process",
           "d": "detach", "c": "cap"}
HELP = """USAGE:
   pyrunc exec [command options] <container-id> <command> [command options]  || -p process.json <container-id>

DESCRIPTION:
   The exec command executes a new process inside the container: it joins the
container's namespaces and cgroup, and takes its defaults (env, capabilities,
rlimits, user) from the container's process, overridden by the options.

EXAMPLE:
   # pyrunc exec -t mycontainer ps
   # pyrunc exec -e FOO=bar --cwd /tmp -u 1000:1000 mycontainer sh -c 'id; pwd'
   # pyrunc exec -d --pid-file /run/exec.pid -p process.json mycontainer

OPTIONS:
   --console-socket value       path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
   --cwd value                  current working directory in the container
   --env value, -e value        set environment variables (repeatable)
   --tty, -t                    allocate a pseudo-TTY
   --user value, -u value       UID (format: <uid>[:<gid>])
   --additional-gids value, -g  additional gids (repeatable)
   --process value, -p value    path to the process.json
   --detach, -d                 detach from the container's process
   --pid-file value             specify the file to write the process id to
   --process-label value        set the asm process label for the process commonly used with selinux
   --apparmor value             set the apparmor profile for the process
   --no-new-privs               set the no new privileges value for the process
   --cap value, -c value        add a capability to the bounding set for the process (repeatable)
   --preserve-fds value         Pass N additional file descriptors to the container (default: 0)
   --ignore-paused              allow exec in a paused container
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("exec", args, 1, "min")
    from ..errors import PyruncError
    from ..container.exec import ExecOptions, execute
    try:
        return execute(ctx.root, args[0], ExecOptions.from_flags(opts, args[1:]))
    except PyruncError as e:
        e.code = 255  # runc exits 255 when exec itself fails, and says so first
        if not str(e).startswith("exec failed: "):
            e.args = (f"exec failed: {e}",)
        raise
