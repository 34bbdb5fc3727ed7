"""`containerd-shim-pyrunc-v1`: the shim's command line.

containerd 1.6 runs it as
    containerd-shim-pyrunc-v1 -namespace NS -address ADDR -publish-binary BIN [-debug] -id ID start
    containerd-shim-pyrunc-v1 -namespace NS -address ADDR -publish-binary BIN -id ID -bundle B delete
with the bundle as its working directory and TTRPC_ADDRESS (containerd's
ttrpc socket, for events) in its environment. Flags follow Go's flag
package: -flag value, -flag=value, one dash or two, a boolean only as -flag
or -flag=true|false, flags end at the first argument that is not one.
Without an action, the shim serves on an inherited listening socket (fd 3,
as Go shims re-exec themselves) or on -socket PATH.
"""
from __future__ import annotations

import os
import sys

NAME = "containerd-shim-pyrunc-v1"
RUNTIME = "io.containerd.pyrunc.v1"

# flag -> default; a bool default marks a boolean flag (containerd 1.6's shim.go set)
FLAGS: dict[str, object] = {
    "debug": False, "v": False, "namespace": "", "id": "", "socket": "", "bundle": "",
    "address": "", "publish-binary": "containerd",
}


class UsageError(Exception):
    pass


def parse_flags(argv: list[str]) -> tuple[dict[str, object], list[str]]:
    """Go flag parsing: (flag values, the remaining arguments)."""
    values = dict(FLAGS)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        if arg == "--":
            i += 1
            break
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if not name or name[0] in "-=":
            raise UsageError(f"bad flag syntax: {arg}")
        name, has_value, value = name.partition("=")
        if name in ("h", "help"):
            raise UsageError("")
        if name not in FLAGS:
            raise UsageError(f"flag provided but not defined: -{name}")
        i += 1
        if isinstance(FLAGS[name], bool):
            if not has_value:
                values[name] = True
            elif value.lower() in ("1", "t", "true"):
                values[name] = True
            elif value.lower() in ("0", "f", "false"):
                values[name] = False
            else:
                raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
        elif has_value:
            values[name] = value
        elif i < len(argv):
            values[name] = argv[i]
            i += 1
        else:
            raise UsageError(f"flag needs an argument: -{name}")
    return values, argv[i:]


USAGE = f"""Usage of {NAME}:
  {NAME} [flags] start|delete
  -address string     grpc address back to main containerd
  -bundle string      path to the bundle if not workdir
  -debug              enable debug output in logs
  -id string          id of the task
  -namespace string   namespace that owns the shim
  -publish-binary string
                      path to publish binary (used for publishing events) (default "containerd")
  -socket string      socket path to serve
  -v                  show the shim version and exit
"""


def _version() -> str:
    from pyrunc import __version__ as version
    commit = "unknown"
    try:
        with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "COMMIT")) as f:
            commit = f.read().strip() or commit
    except OSError:
        pass
    return f"{NAME}:\n  Version:  {version}\n  Revision: {commit}\n  Python:   {sys.version.split()[0]}\n"


def run_and_exit(argv: list[str]) -> None:
    """The launcher's entry: main(), then exit without interpreter teardown
    (as pyrunc's CLI): `start` and `delete` are on containerd's critical
    path, and the server has cleaned up before serve() returns."""
    code = main(argv)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


def main(argv: list[str]) -> int:
    try:
        flags, args = parse_flags(argv[1:])
    except UsageError as e:
        if str(e):
            sys.stderr.write(f"{e}\n")
        sys.stderr.write(USAGE)
        return 0 if not str(e) else 2
    if flags["v"]:
        sys.stdout.write(_version())
        return 0
    from pyrunc.shim import process
    try:
        return _run(flags, args, process)
    except process.ShimError as e:
        sys.stderr.write(f"{RUNTIME}: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _run(flags: dict[str, object], args: list[str], process) -> int:
    action = args[0] if args else ""
    if action == "zygote" and len(args) >= 4:  # launched by `start` (shim/zygote.py)
        from pyrunc.shim import zygote
        if not zygote.is_zygote_path(args[1]):
            raise process.ShimError("zygote: bad arguments")
        try:
            return zygote.serve_zygote(args[1], int(args[2]), float(args[3]))
        except ValueError:
            raise process.ShimError("zygote: bad arguments") from None
    if action not in ("", "start", "delete"):
        raise process.ShimError(f"unknown action {action!r} (want start or delete)")
    if not flags["namespace"]:
        raise process.ShimError("shim namespace cannot be empty")
    bundle = str(flags["bundle"] or os.getcwd())
    if action == "delete":
        data = process.delete(flags, bundle)
        os.write(1, data)
        return 0
    if not flags["id"]:
        raise process.ShimError("shim id cannot be empty")
    if action == "start":
        if not flags["address"]:
            raise process.ShimError("containerd address cannot be empty (-address)")
        from pyrunc.shim.start import start
        address = start(flags, bundle)
        sys.stdout.write(address)  # no newline, as Go shims (containerd trims it)
        sys.stdout.flush()
        return 0
    return _serve_inherited(flags, bundle, process)


def _serve_inherited(flags: dict[str, object], bundle: str, process) -> int:
    """Serve on fd 3 (a listening socket handed down) or on -socket."""
    import socket
    path = str(flags["socket"])
    if path:
        path = path[len("unix://"):] if path.startswith("unix://") else path
        try:
            listener = process._listen(path)
        except OSError as e:
            raise process.ShimError(f"listen {path}: {os.strerror(e.errno or 0).lower()}") from None
        return process.serve(listener, flags, bundle, "unix://" + path)
    try:
        listener = socket.socket(fileno=3)
        if listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 1:
            raise OSError
    except OSError:
        raise process.ShimError("no listening socket on fd 3 and no -socket: nothing to serve") from None
    return process.serve(listener, flags, bundle, None)
