"""`pyrunc` entry point: global flags, command dispatch, one-line errors.

Parsing is hand-written rather than argparse: it follows urfave/cli v1 as
runc uses it and costs nothing at start-up. `--flag value` or `--flag=value`;
`--` ends flags; global flags come before the command; a command's own flags
may also follow its arguments (`delete ID --force`, `kill ID KILL --all`),
as urfave/cli moves them forward (reorderArgs), except for exec and ps, whose
arguments after the id belong to the process or to ps(1) (SkipArgReorder).
Each command lives in its own module, imported only when that command runs.
"""
from __future__ import annotations

import os
import sys

from .. import log
from ..errors import PyruncError

TYPE_CHECKING = False  # typing is not imported on the start-up path
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ..init.stage import Stage

VERSION = "0.1.0"
SPEC_VERSION = "1.3.0"

# command -> (module, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "checkpoint": ("checkpoint", "checkpoint a running container"),
    "create": ("create", "create a container"),
    "delete": ("delete", "delete any resources held by the container often used with detached container"),
    "events": ("events", "display container events such as OOM notifications, cpu, memory, and IO usage statistics"),
    "exec": ("exec", "execute new process inside the container"),
    "features": ("features", "show the enabled features"),
    "image": ("image", "image tools: copy, inspect and list images (as skopeo), unpack them into bundles (as umoci)"),
    "kill": ("kill", "kill sends the specified signal (default: SIGTERM) to the container's init process"),
    "list": ("list", "lists containers started by pyrunc with the given root"),
    "pause": ("pause", "pause suspends all processes inside the container"),
    "restore": ("restore", "restore a container from a previous checkpoint"),
    "resume": ("resume", "resumes all processes that have been previously paused"),
    "ps": ("ps", "ps displays the processes running inside a container"),
    "run": ("run", "create and run a container"),
    "spec": ("spec", "create a new specification file"),
    "start": ("start", "executes the user defined process in a created container"),
    "state": ("state", "output the state of a container"),
    "update": ("update", "update container resource constraints"),
    "version": ("version", "print the version"),
}
ALIASES = {"ls": "list"}
# runc's SkipArgReorder: flags stop at the first argument
NO_REORDER = ("exec", "ps", "image")

GLOBAL_FLAGS: dict[str, tuple[str, object]] = {
    "debug": ("bool", False),
    "log": ("str", ""),
    "log-format": ("str", "text"),
    "root": ("str", ""),
    "systemd-cgroup": ("bool", False),
    "rootless": ("str", "auto"),
    "help": ("bool", False),
    "version": ("bool", False),
}
GLOBAL_ALIASES = {"h": "help", "v": "version"}


class Context:
    """What every command gets: the global options."""

    def __init__(self, opts: dict) -> None:
        self.debug: bool = opts["debug"]
        self.log: str = opts["log"]
        self.log_format: str = opts["log-format"]
        self.root: str = opts["root"] or default_root()
        self.root_set: bool = bool(opts["root"])
        self.systemd_cgroup: bool = opts["systemd-cgroup"]
        self.rootless: str = opts["rootless"]
        # create/run: the stage child, forked before the command's own work
        self.stage: Stage | None = None


def default_root() -> str:
    """/run/pyrunc, or $XDG_RUNTIME_DIR/pyrunc where runc would honour it
    (shouldHonorXDGRuntimeDir): an unprivileged user, or root of a user
    namespace that is not the real root (rootless podman calls us so)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        if os.geteuid() != 0:
            return os.path.join(xdg, "pyrunc")
        from ..cgroups import running_in_userns
        if running_in_userns() and os.environ.get("USER", "") != "root":
            return os.path.join(xdg, "pyrunc")
    return "/run/pyrunc"


def parse_flags(spec: Mapping[str, tuple[str, object]], aliases: dict[str, str],
                argv: list[str], stop_at_positional: bool = True) -> tuple[dict, list[str]]:
    """Parse urfave/cli style flags; returns (values, remaining positional args).

    stop_at_positional: flags end at the first argument (global flags, exec,
    ps). Otherwise known flags are taken wherever they are, and an unknown
    one after an argument is an argument, as urfave/cli's reorderArgs does."""
    opts: dict[str, Any] = {k: (list(v) if isinstance(v, list) else v) for k, (_, v) in spec.items()}
    i = 0
    rest: list[str] = []
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest.extend(argv[i + 1:])
            break
        if not a.startswith("-") or a == "-":
            if stop_at_positional:
                rest.extend(argv[i:])
                break
            rest.append(a)
            i += 1
            continue
        name, eq, val = a.lstrip("-").partition("=")
        name = aliases.get(name, name)
        if name not in spec:
            if rest:  # not stop_at_positional: reorderArgs leaves it among the arguments
                rest.append(a)
                i += 1
                continue
            raise PyruncError(f"flag provided but not defined: -{a.lstrip('-').partition('=')[0]}")
        kind = spec[name][0]
        if kind == "bool":
            if eq:
                if val.lower() not in ("true", "false", "1", "0", "t", "f"):
                    raise PyruncError(f"invalid boolean value {val!r} for -{name}")
                opts[name] = val.lower() in ("true", "1", "t")
            else:
                opts[name] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise PyruncError(f"flag needs an argument: -{name}")
            val = argv[i + 1]
            i += 1
        i += 1
        if kind == "int":
            try:
                opts[name] = int(val, 0)
            except ValueError:
                raise PyruncError(f"invalid value {val!r} for flag -{name}: parse error") from None
            if not -(1 << 63) <= opts[name] < 1 << 63:  # urfave's int64 flag, as runc
                raise PyruncError(f'invalid value "{val}" for flag -{name}: value out of range')
        elif kind == "list":
            opts[name].append(val)
        else:
            opts[name] = val
    return opts, rest


def check_args(cmd: str, args: list[str], n: int, how: str = "exactly") -> None:
    """runc's checkArgs: "Incorrect Usage." and the command's help on
    stdout, then the same one-line error when the count is wrong."""
    ok = {"exactly": len(args) == n, "min": len(args) >= n, "max": len(args) <= n}[how]
    if not ok:
        word = {"exactly": "exactly", "min": "a minimum of", "max": "a maximum of"}[how]
        if cmd in COMMANDS:
            mod = sys.modules.get(f"pyrunc.cli.{COMMANDS[cmd][0]}")
            if mod is not None:
                sys.stdout.write("Incorrect Usage.\n\n" + command_help(cmd, mod))
        raise PyruncError(f'pyrunc: "{cmd}" requires {word} {n} argument(s)')


def version_text() -> str:
    """runc's printVersion lines, which tools parse: name and version,
    commit, spec, the language's version, and libseccomp's when it loads."""
    lines = [f"pyrunc version {VERSION}", f"commit: {_commit()}", f"spec: {SPEC_VERSION}",
             f"python: {sys.version.split()[0]}"]
    try:
        from ..linux.seccomp import version
        v = version()
        if sum(v) > 0:
            lines.append("libseccomp: %d.%d.%d" % v)
    except (OSError, AttributeError, ValueError):
        pass  # no libseccomp (runc omits the line too)
    return "\n".join(lines) + "\n"


def _commit() -> str:
    """The source's `git describe`, written into the package by
    scripts/install.sh; "unknown" for an install made another way."""
    try:
        with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "COMMIT")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def usage() -> str:
    lines = [
        "NAME:", "   pyrunc - Open Container Initiative runtime, in Python", "",
        "USAGE:", "   pyrunc [global options] command [command options] [arguments...]", "",
        "VERSION:", f"   {VERSION}", "", "COMMANDS:",
    ]
    for name, (_, summary) in COMMANDS.items():
        lines.append(f"   {name:<11} {summary}")
    lines += ["", "GLOBAL OPTIONS:",
              "   --debug             enable debug logging",
              "   --log value         set the log file to write pyrunc logs to (default is '/dev/stderr')",
              "   --log-format value  set the log format ('text' (default), or 'json') (default: \"text\")",
              "   --root value        root directory for storage of container state (default: \"/run/pyrunc\")",
              "   --systemd-cgroup    enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\"",
              "   --rootless value    ignore cgroup permission errors ('true', 'false', or 'auto') (default: \"auto\")",
              "   --help, -h          show help",
              "   --version, -v       print the version", ""]
    return "\n".join(lines)


def command_help(name: str, mod) -> str:
    text = getattr(mod, "HELP", "").strip("\n")
    return f"NAME:\n   pyrunc {name} - {COMMANDS[name][1]}\n\n{text}\n"


_stages: list = []  # stage children the command may not have used


def run_and_exit() -> None:
    """The command-line entry: main(), then exit without interpreter
    teardown (a millisecond per command that nobody needs). The cyclic GC is
    off: commands are short, and a collection during start-up costs time and,
    in the container's init, dirties pages charged to the container.
    Long-lived loops (the foreground wait) turn it back on."""
    import gc
    gc.disable()
    code = main()
    for stage in _stages:
        stage.abandon()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        gopts, rest = parse_flags(GLOBAL_FLAGS, GLOBAL_ALIASES, argv)
    except PyruncError as e:
        sys.stderr.write(f"pyrunc: {e}\n")
        return 1
    if gopts["log-format"] not in ("text", "json"):
        sys.stderr.write(f"pyrunc: invalid log-format: {gopts['log-format']}\n")
        return 1
    try:
        log.setup(gopts["log"], gopts["log-format"], gopts["debug"])
    except OSError as e:
        sys.stderr.write(f"pyrunc: cannot open log file {gopts['log']}: {e.strerror}\n")
        return 1
    if gopts["version"]:
        sys.stdout.write(version_text())
        return 0
    if gopts["help"] or not rest or rest[0] in ("help", "h"):
        if rest[1:2] and rest[0] in ("help", "h"):
            rest = [rest[1], "--help"]
        else:
            sys.stdout.write(usage())
            return 0
    name = ALIASES.get(rest[0], rest[0])
    if name in ("run", "create", "exec") and os.geteuid() == 0 and "-h" not in rest and "--help" not in rest:
        # first of all: the grace period it starts is the longest wait of a start
        from ..cgroups import prearm_migration
        prearm_migration(name, gopts["systemd-cgroup"])
    if name not in COMMANDS:
        log.error(f"No help topic for '{name}'")
        return 3
    try:
        mod = __import__(f"pyrunc.cli.{COMMANDS[name][0]}", fromlist=["run"])
        opts, args = parse_flags({**mod.FLAGS, "help": ("bool", False)},
                                 {**getattr(mod, "ALIASES", {}), "h": "help"}, rest[1:],
                                 name in NO_REORDER)
        if opts.pop("help"):
            sys.stdout.write(command_help(name, mod))
            return 0
        ctx = Context(gopts)
        if name in ("run", "create"):
            from ..init.stage import Stage
            Stage.preload_shared(name == "run")
            ctx.stage = Stage.fork(preserve_fds=opts.get("preserve-fds") or 0)
            _stages.append(ctx.stage)
        return int(mod.run(ctx, opts, args) or 0)
    except PyruncError as e:
        log.error(str(e))
        return e.code
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # never a traceback: one line, and the details in --debug
        if isinstance(e, SystemExit):
            raise
        if gopts["debug"]:
            import traceback
            log.debug("".join(traceback.format_exception(e)))
        msg = e.strerror if isinstance(e, OSError) and e.strerror and e.filename is None else str(e)
        if isinstance(e, OSError) and e.filename:
            msg = f"{e.filename}: {e.strerror}"
        log.error(f"pyrunc {name} failed: {msg or type(e).__name__}")
        return 1
