"""image/progress.Report: a report whose output breaks stops, the copy goes on."""
from __future__ import annotations

import io
import threading

from pyrunc.image.progress import Report


class _BrokenPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_line_racing_a_broken_output_does_not_raise():
    # Thread B passes line()'s "out is None" test, then waits for the lock
    # while thread A's write fails and drops the output: B must not then
    # write to None (found by mypy: an AttributeError in a copy thread).
    report = Report(_BrokenPipe())
    errors: list[BaseException] = []
    checked = threading.Event()

    class _Lock:
        """The report's lock, telling when B is about to take it."""

        def __init__(self) -> None:
            self._lock = threading.RLock()

        def __enter__(self) -> None:
            if threading.current_thread() is not threading.main_thread():
                checked.set()
            self._lock.__enter__()

        def __exit__(self, *exc: object) -> None:
            self._lock.__exit__(*exc)

    report._lock = _Lock()  # type: ignore[assignment]

    def other() -> None:
        try:
            report.line("Copying blob sha256:2")
        except BaseException as e:  # noqa: BLE001 - the test reports it
            errors.append(e)

    with report._lock:
        t = threading.Thread(target=other)
        t.start()
        assert checked.wait(5)
        report._write("Copying blob sha256:1\n")  # A: EPIPE, the report stops
        assert report.out is None
    t.join(5)
    assert errors == []
