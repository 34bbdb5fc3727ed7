"""The thin syscall layer: every ctypes call pyrunc makes lives here.

Python 3.11 lacks unshare/setns/mount/pivot_root, so they are reached through
libc. Nothing above this package touches ctypes. Each wrapper raises OSError
with errno and a short description, so callers can turn it into one line.
The calls that shape a container's file system are reached through one
object, `sys.sc` (class Syscalls), which unit tests swap for a recorder.
"""
