"""init/child.py's seal_imports: after the init's pivot_root no import may
read a file (the rootfs is the container's), whatever it was before."""
from __future__ import annotations

import os
import warnings

from pyrunc.init.child import seal_imports


def _in_child(fn) -> str:
    """Run fn in a forked child (sealing is for good); what it returns."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(w, fn().encode())
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 65536).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return data


def test_no_import_after_the_seal():
    def probe() -> str:
        import sys
        sys.modules.pop("csv", None)
        seal_imports()
        warnings.simplefilter("ignore")
        try:
            import csv  # noqa: F401 - a stdlib module, on disk, not loaded
        except ImportError:
            return "refused"
        return "imported"
    assert _in_child(probe) == "refused"


def test_loaded_modules_stay_usable_and_the_finders_are_empty():
    def probe() -> str:
        import sys
        seal_imports()
        import os.path  # noqa: F401 - loaded already: no finder needed
        return f"{len(sys.meta_path)} {len(sys.path)} {len(sys.path_hooks)} {len(sys.path_importer_cache)}"
    assert _in_child(probe) == "0 0 0 0"
