"""What `pyrunc image copy` tells the user while it works, as skopeo does.

skopeo reports on stdout. On a terminal each blob gets a live line
(`Copying blob 358a7fd360b5 [=====>------] 1.2MiB / 3.4MiB`) that ends as
`... done` or `... skipped: already exists`; elsewhere each blob is one plain
line, `Copying blob sha256:<hex>`, printed when its copy starts (the lines
containers/image's copier prints when its progress output is not a tty).
Quiet reports nothing.
"""
from __future__ import annotations

import threading
import time
from typing import Optional, TextIO

BAR_WIDTH = 38          # mpb.WithWidth(40): 38 cells between the brackets
SHORT_DIGEST = 12       # the hex shown of a blob digest on a terminal
REFRESH = 0.15          # seconds between redraws (mpb's 150ms)


def size_b1024(n: float) -> str:
    """decor.SizeB1024 with %.1f: 105.0b, 1.5KiB, 2.3MiB."""
    for unit in ("b", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}TiB"


def _prefix(kind: str, digest: str) -> str:
    """`Copying blob <12 hex>`: the prefix cut so all lines align (a config
    shows 10 hex, as skopeo)."""
    p = f"Copying {kind} {digest.partition(':')[2] or digest}"
    return p[:len("Copying blob ") + SHORT_DIGEST]


class Bar:
    """One blob's progress; `add` counts bytes, `finish` sets the last word."""

    def __init__(self, report: "Report", kind: str, digest: str, size: int) -> None:
        self.report = report
        self.prefix = _prefix(kind, digest)
        self.size = size if isinstance(size, int) and size > 0 else 0
        self.current = 0
        self.final: Optional[str] = None

    def add(self, n: int) -> None:
        self.current += n
        self.report._changed()

    def finish(self, label: str = "done") -> None:
        self.final = f"{self.prefix} {label}"
        self.report._changed(force=True)

    def line(self) -> str:
        if self.final is not None:
            return self.final
        if not self.size:
            return f"{self.prefix} ..."
        filled = min(BAR_WIDTH, self.current * BAR_WIDTH // self.size)
        bar = "=" * BAR_WIDTH if filled == BAR_WIDTH else "=" * filled + ">" + "-" * (BAR_WIDTH - filled - 1)
        return f"{self.prefix} [{bar}] {size_b1024(self.current)} / {size_b1024(self.size)}"


class _NoBar:
    def add(self, n: int) -> None:
        pass

    def finish(self, label: str = "done") -> None:
        pass


class Report:
    """skopeo's report writer: plain lines, or live bars on a terminal."""

    def __init__(self, out: Optional[TextIO], quiet: bool = False) -> None:
        self.out = None if quiet else out
        try:
            self.tty = bool(self.out is not None and self.out.isatty())
        except (AttributeError, ValueError, OSError):
            self.tty = False
        self._lock = threading.RLock()
        self._bars: list[Bar] = []
        self._drawn = 0          # lines of the live block on screen
        self._last = 0.0

    def _write(self, text: str) -> None:
        if self.out is None:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except (OSError, ValueError):
            self.out = None  # a closed pipe stops the report, not the copy

    def line(self, text: str) -> None:
        if self.out is None:
            return
        with self._lock:
            self._write(text + "\n")

    def bar(self, kind: str, digest: str, size: int):
        """A blob's progress: on a terminal a live line, else the plain
        `Copying KIND DIGEST` line printed now."""
        if self.out is None:
            return _NoBar()
        if not self.tty:
            self.line(f"Copying {kind} {digest}")
            return _NoBar()
        b = Bar(self, kind, digest, size)
        with self._lock:
            self._bars.append(b)
        self._changed(force=True)
        return b

    def _changed(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < REFRESH:
            return
        with self._lock:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.out is None or not self._bars:
            return
        up = f"\x1b[{self._drawn}A\x1b[J" if self._drawn else ""
        self._write(up + "".join(b.line() + "\n" for b in self._bars))
        self._drawn = len(self._bars)

    def done(self) -> None:
        """End the live block: its last state stays on the screen."""
        with self._lock:
            self._draw()
            self._bars = []
            self._drawn = 0
