"""The create and run path stays readable: no function of it over 80 lines
(the phases of container/launch.py, the sync protocol, the run)."""
from __future__ import annotations

import ast
import os

import pytest

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src", "pyrunc")
FILES = ["container/launch.py", "container/run.py", "init/sync.py", "cli/run.py"]
MAX_LINES = 80


@pytest.mark.parametrize("path", FILES)
def test_no_function_over_80_lines(path):
    with open(os.path.join(SRC, path)) as f:
        tree = ast.parse(f.read())
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_LINES]
    assert long == []
