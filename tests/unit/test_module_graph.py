"""pyrunc's modules form a layered graph: no import cycle, and no import from
a lower room to a higher one (docs/design.md, "Module layers").

Every Import and ImportFrom node counts, at module level or inside a
function (the lazy imports of the start-up path are imports all the same).
An edge from a module to one of its own enclosing packages is left out of the
cycle check only: Python always runs a package's __init__ before any of its
submodules, so `from . import helper` in a submodule adds no ordering the
package does not already have (a package's __init__ may import its own
submodules lazily). Such an edge still counts for the layers.
"""
from __future__ import annotations

import ast
import os
import sys

import pyrunc

SRC = os.path.dirname(os.path.dirname(os.path.abspath(pyrunc.__file__)))

# (room, rank, module prefixes), lowest first. A module may import from its
# own room and from rooms of a LOWER rank; rooms of the same rank are
# siblings and import nothing from each other.
ROOMS: list[tuple[str, int, tuple[str, ...]]] = [
    ("base", 0, ("pyrunc.errors", "pyrunc.log", "pyrunc.fastjson", "pyrunc.terminal")),
    ("linux", 1, ("pyrunc.linux",)),
    ("security", 2, ("pyrunc.security",)),
    ("cgroups", 2, ("pyrunc.cgroups",)),
    ("hooks", 2, ("pyrunc.hooks",)),
    ("rootfs", 3, ("pyrunc.rootfs",)),
    ("spec", 4, ("pyrunc.spec",)),
    ("init", 5, ("pyrunc.init",)),
    ("image", 5, ("pyrunc.image",)),
    ("container", 6, ("pyrunc.container",)),
    ("criu", 7, ("pyrunc.criu",)),
    ("library", 8, ("pyrunc",)),  # the package itself: the lazy facade (Container, ...)
    ("cli", 9, ("pyrunc.cli", "pyrunc.__main__", "pyrunc._boot")),
]


# Edges left out of the cycle check, each with its reason; the test below
# fails once one of them is gone, so that the exception goes with it.
CYCLE_EXCEPTIONS: dict[tuple[str, str], str] = {
}


def _modules() -> dict[str, tuple[str, bool]]:
    """module name -> (file, is_package) for every .py under src/pyrunc."""
    mods = {}
    for d, _, files in os.walk(os.path.join(SRC, "pyrunc")):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(d, f)
                name = os.path.relpath(path, SRC)[:-3].replace(os.sep, ".")
                pkg = name.endswith(".__init__")
                mods[name[:-len(".__init__")] if pkg else name] = (path, pkg)
    return mods


def _graph(mods: dict[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """module -> {imported pyrunc module: line of the first such import}."""
    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, dict[str, int]] = {}
    for mod, (path, is_pkg) in mods.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        pkg = mod if is_pkg else mod.rpartition(".")[0]
        out: dict[str, int] = {}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = pkg.split(".")
                    base = ".".join(parts[:len(parts) - (node.level - 1)])
                    full = f"{base}.{node.module}" if node.module else base
                else:
                    full = node.module or ""
                # `from P import m` imports the module P.m when there is one
                targets = [f"{full}.{a.name}" if f"{full}.{a.name}" in mods else full for a in node.names]
            for t in targets:
                if t == "pyrunc" or t.startswith("pyrunc."):
                    k = known(t)
                    if k and k != mod:
                        out.setdefault(k, node.lineno)
        edges[mod] = out
    return edges


def _room(mod: str) -> tuple[str, int] | None:
    best = None
    for room, rank, prefixes in ROOMS:
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), room, rank)
    return best and (best[1], best[2])


def _cycle(edges: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None."""
    def ancestor(a: str, b: str) -> bool:
        return a.startswith(b + ".")

    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        color[v] = 1
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if ancestor(v, w) or (v, w) in CYCLE_EXCEPTIONS:
                continue
            if color.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in color:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        color[v] = 2
        return None

    for v in sorted(edges):
        if v not in color:
            found = visit(v)
            if found:
                return found
    return None


def test_every_module_has_a_room():
    assert [m for m in sorted(_modules()) if _room(m) is None] == []


def test_no_import_cycle():
    mods = _modules()
    edges = _graph(mods)
    cyc = _cycle(edges)
    if cyc:
        where = " -> ".join(f"{a} (line {edges[a][b]})" for a, b in zip(cyc, cyc[1:]))
        raise AssertionError(f"import cycle: {where} -> {cyc[-1]}")


def test_cycle_exceptions_are_still_needed():
    """An exception whose edge is gone (or no longer closes a cycle) is removed."""
    edges = _graph(_modules())
    present = {e for e in CYCLE_EXCEPTIONS if e[1] in edges.get(e[0], {})}
    # an edge named for a module that does not exist (yet) is harmless
    gone = [e for e in CYCLE_EXCEPTIONS if e not in present and e[1] in edges]
    assert not gone, f"exceptions no longer needed: {gone}"
    for v, w in present:  # each still closes a cycle: w leads back to v
        seen, todo = set(), [w]
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo.extend(y for y in edges.get(x, ()) if (x, y) not in CYCLE_EXCEPTIONS
                            and not x.startswith(y + "."))
        assert v in seen, f"{v} -> {w} no longer closes a cycle: remove its exception"


def test_no_upward_import():
    mods = _modules()
    bad = []
    for mod, targets in sorted(_graph(mods).items()):
        room, rank = _room(mod) or ("?", -1)
        for t, line in sorted(targets.items()):
            troom, trank = _room(t) or ("?", -1)
            if troom != room and trank >= rank:
                bad.append(f"{mods[mod][0][len(SRC) + 1:]}:{line}: {mod} ({room}, {rank}) imports "
                           f"{t} ({troom}, {trank})")
    assert not bad, "imports that go up (or sideways) the layers:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The walk is not fooled by an import inside a function or a relative one."""
    pkg = tmp_path / "pyrunc"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("def f():\n    from ..high import b\n")
    (pkg / "high.py").write_text("from .low.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", str(tmp_path))
    edges = _graph(_modules())
    assert edges["pyrunc.low.a"] == {"pyrunc.high": 2}
    assert edges["pyrunc.high"] == {"pyrunc.low.a": 1}
    assert _cycle(edges) in (["pyrunc.high", "pyrunc.low.a", "pyrunc.high"],
                             ["pyrunc.low.a", "pyrunc.high", "pyrunc.low.a"])
