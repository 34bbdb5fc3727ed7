"""pyrunc ps: the processes running inside a container (from its cgroup)."""
from __future__ import annotations

FLAGS = {"format": ("str", "table")}
ALIASES = {"f": "format"}
HELP = """USAGE:
   pyrunc ps [command options] <container-id> [ps options]

DESCRIPTION:
   The ps command lists the processes in the container's cgroup. As with runc,
the table is the host's `ps` output (default options -ef; any given after the
id are passed to ps) filtered to the container's processes; --format json
prints the list of host pids.

EXAMPLE:
   # pyrunc ps mycontainer
   # pyrunc ps mycontainer -o pid,comm
   # pyrunc ps --format json mycontainer

OPTIONS:
   --format value, -f value  select one of: table or json (default: "table")
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    import sys
    from .main import check_args
    from ..errors import PyruncError
    check_args("ps", args, 1, "min")
    fmt = opts["format"]
    if fmt not in ("table", "json"):
        raise PyruncError(f"invalid format option {fmt!r}")
    from ..cgroups import Manager
    from ..container.ops import load
    sd, st, status = load(ctx.root, args[0], shared=True)
    sd.unlock()
    pids = sorted(Manager(st.get("cgroup_paths") or {}).pids()) if status != "stopped" else []
    if fmt == "json":
        from ..fastjson import dumps
        sys.stdout.write(dumps(pids) + "\n")
        return 0
    import subprocess  # the host's ps, as runc does: its columns are the user's choice
    ps_args = args[1:] or ["-ef"]
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise PyruncError("ps: executable file not found in $PATH") from None
    except subprocess.CalledProcessError as e:
        raise PyruncError(f"ps: {e.stderr.strip() or e}") from None
    lines = out.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise PyruncError("couldn't find PID field in ps output")
    col = header.index("PID")
    keep = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in keep:
            sys.stdout.write(line + "\n")
    return 0
