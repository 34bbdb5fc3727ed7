"""The handful of C types and the libc handle linux/sys.py needs, made
directly on _ctypes.

`import ctypes` costs about 2 ms (a class for every C type, the byte-order
structures, struct, types), and the stage child pays it before every
container start; these definitions cost a tenth of that. They are the same
_ctypes machinery ctypes itself is built on, so calls behave as with ctypes.
Modules that need more of ctypes (libseccomp, bpf) import ctypes itself.
"""
from __future__ import annotations

import _ctypes
from _ctypes import Structure, addressof, byref, get_errno, sizeof  # noqa: F401 - re-exported

TYPE_CHECKING = False  # typing itself is not imported on the start-up path
if TYPE_CHECKING:
    from ctypes import Array


def _simple(name: str, code: str) -> type:
    """A C scalar type, as ctypes defines c_int & co (a _SimpleCData with its
    struct-module type code)."""
    return type(name, (_ctypes._SimpleCData,), {"_type_": code})


if TYPE_CHECKING:
    # The checker sees ctypes' own classes: these behave the same.
    from ctypes import c_char, c_char_p, c_int, c_long, c_uint, c_uint64, c_ulong, c_void_p
else:
    c_int, c_uint = _simple("c_int", "i"), _simple("c_uint", "I")
    c_long, c_ulong = _simple("c_long", "l"), _simple("c_ulong", "L")
    c_uint64, c_char = _simple("c_uint64", "Q"), _simple("c_char", "c")
    c_char_p, c_void_p = _simple("c_char_p", "z"), _simple("c_void_p", "P")
c_int32, c_uint32, c_size_t = c_int, c_uint, c_ulong


def create_string_buffer(size: int) -> Array[c_char]:
    """A zeroed char[size]: .raw and .value as with ctypes."""
    return (c_char * size)()


class _Func(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class Library:
    """A dlopen()ed library (None: the program and libc); its functions,
    looked up on first use, return int and keep errno for get_errno()."""

    def __init__(self, name: str | None) -> None:
        # dlopen(NULL) is the program itself; typeshed only allows a path.
        self._handle = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)  # type: ignore[arg-type]

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        # CFuncPtr only needs the ._handle ctypes.CDLL would have.
        f = _Func((name, self))  # type: ignore[arg-type]
        setattr(self, name, f)
        return f
