"""pyrunc list: the containers under --root, as runc's table or JSON."""
from __future__ import annotations

FLAGS = {"format": ("str", "table"), "quiet": ("bool", False)}
ALIASES = {"f": "format", "q": "quiet"}
HELP = """USAGE:
   pyrunc list [command options]

DESCRIPTION:
   The list command lists containers started by pyrunc with the given root.

EXAMPLE:
   # pyrunc list
   # pyrunc list --format json
   # pyrunc --root /run/other list -q

OPTIONS:
   --format value, -f value  select one of: table or json (default: "table")
   --quiet, -q               display only container IDs
"""


def tabwrite(rows: list[list[str]], minwidth: int = 12, padding: int = 3) -> str:
    """Go's text/tabwriter as runc configures it (minwidth 12, padding 3):
    every column but the last is padded to its widest cell."""
    widths = [max(minwidth, max(len(r[i]) for r in rows) + padding) for i in range(len(rows[0]) - 1)]
    return "".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] + "\n" for r in rows)


def run(ctx, opts: dict, args: list[str]) -> int:
    import sys
    from ..errors import PyruncError
    from ..container.state import list_ids
    fmt = opts["format"]
    if fmt not in ("table", "json"):
        raise PyruncError(f"invalid format option")
    import os
    if ctx.root_set and not os.path.isdir(ctx.root):
        raise PyruncError(f"open {ctx.root}: no such file or directory")
    ids = list_ids(ctx.root)
    if opts["quiet"]:
        sys.stdout.write("".join(i + "\n" for i in ids))
        return 0
    from ..container.state import state_doc
    docs = []
    for cid in ids:
        try:
            doc = state_doc(ctx.root, cid)
        except PyruncError:
            continue
        doc["owner"] = _owner(ctx.root, cid)
        docs.append(doc)
    if fmt == "json":
        from ..fastjson import dumps
        sys.stdout.write(dumps(docs or None) + "\n")
        return 0
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    rows += [[d["id"], str(d["pid"]), d["status"], d["bundle"], d["created"], d["owner"]] for d in docs]
    sys.stdout.write(tabwrite(rows))
    return 0


def _owner(root: str, cid: str) -> str:
    import os
    import pwd
    uid = os.stat(os.path.join(root, cid)).st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"
