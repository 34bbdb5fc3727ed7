"""pyrunc version."""
from __future__ import annotations

FLAGS: dict = {}
HELP = """USAGE:
   pyrunc version

EXAMPLE:
   # pyrunc version
"""


def run(ctx, opts: dict, args: list[str]) -> int:
    import sys
    from .main import version_text
    sys.stdout.write(version_text())
    return 0
