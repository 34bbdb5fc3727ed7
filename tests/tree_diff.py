"""Comparing two unpacked root file systems entry by entry (type, mode,
owner, size, content digest, link target, device, xattrs, mtime)."""
from __future__ import annotations

import hashlib
import os
import stat


def tree(root: str, times: bool = True) -> dict[str, tuple]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            extra = None
            if stat.S_ISREG(kind):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                extra = h.hexdigest()
            elif stat.S_ISLNK(kind):
                extra = os.readlink(p)
            elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                xattrs = {k: os.getxattr(p, k, follow_symlinks=False)
                          for k in sorted(os.listxattr(p, follow_symlinks=False))}
            except OSError:
                xattrs = None
            out[os.path.relpath(p, root)] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                             extra, xattrs, st.st_mtime_ns if times else None)
    return out


def differences(a: str, b: str, times: bool = True, limit: int = 10) -> list[str]:
    ta, tb = tree(a, times), tree(b, times)
    out = []
    for k in sorted(set(ta) | set(tb)):
        if ta.get(k) != tb.get(k):
            out.append(f"{k}: {ta.get(k)} != {tb.get(k)}")
            if len(out) >= limit:
                break
    return out
