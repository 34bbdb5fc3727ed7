"""Linux constants (x86_64 and aarch64). Pure data: no ctypes, cheap to import."""
from __future__ import annotations

import os

# clone / unshare flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# runtime-spec namespace type -> (clone flag, /proc/<pid>/ns name)
NAMESPACES: dict[str, tuple[int, str]] = {
    "user": (CLONE_NEWUSER, "user"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "mount": (CLONE_NEWNS, "mnt"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# mount_setattr(2)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
O_PATH = 0o10000000

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# keyctl(2)
KEYCTL_JOIN_SESSION_KEYRING = 1

# statfs f_type magics
PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994
CGROUP2_SUPER_MAGIC = 0x63677270
NSFS_MAGIC = 0x6E736673

_MACHINE = os.uname().machine
# syscall numbers that glibc 2.36 does not wrap
SYSCALLS: dict[str, int] = {
    "x86_64": {
        "pivot_root": 155, "capget": 125, "capset": 126, "setns": 308,
        "open_tree": 428, "move_mount": 429, "openat2": 437,
        "mount_setattr": 442, "keyctl": 250, "sched_setattr": 314,
        "ioprio_set": 251, "pidfd_open": 434, "pidfd_send_signal": 424,
        "close_range": 436,
    },
    "aarch64": {
        "pivot_root": 41, "capget": 90, "capset": 91, "setns": 268,
        "open_tree": 428, "move_mount": 429, "openat2": 437,
        "mount_setattr": 442, "keyctl": 219, "sched_setattr": 274,
        "ioprio_set": 30, "pidfd_open": 434, "pidfd_send_signal": 424,
        "close_range": 436,
    },
}.get(_MACHINE, {})

# --- process attributes (security/attrs.py) and network devices (container/netdev.py)

SYSCALLS.update({
    "x86_64": {"sched_getattr": 315, "ioprio_get": 252, "set_mempolicy": 238, "get_mempolicy": 239},
    "aarch64": {"sched_getattr": 275, "ioprio_get": 31, "set_mempolicy": 237, "get_mempolicy": 236},
}.get(_MACHINE, {}))

# set_mempolicy(2) modes and mode flags (runtime-spec linux.memoryPolicy)
MPOL_MODES: dict[str, int] = {
    "MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
    "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6,
}
MPOL_FLAGS: dict[str, int] = {
    "MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_STATIC_NODES": 1 << 15,
}

# personality(2) execution domains (runtime-spec linux.personality.domain)
PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
PERSONALITY_QUERY = 0xFFFFFFFF  # personality(0xffffffff) returns the current persona

# sched_setattr(2) policies and flags (runtime-spec process.scheduler)
SCHED_POLICIES: dict[str, int] = {
    "SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
    "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6,
}
SCHED_FLAGS: dict[str, int] = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
    "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
    "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
SCHED_RESET_ON_FORK = 0x40000000  # or-ed into the policy by sched_getscheduler(2)

# ioprio_set(2) (runtime-spec process.ioPriority)
IOPRIO_CLASSES: dict[str, int] = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13
IOPRIO_WHO_PROCESS = 1
IOPRIO_WHO_PGRP = 2
IOPRIO_WHO_USER = 3

# rtnetlink (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h)
NETLINK_ROUTE = 0
NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_NET_NS_PID = 19
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_LABEL = 3
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
IFF_UP = 0x1
IFNAMSIZ = 16

# setrlimit(2) resources by their spec names
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
