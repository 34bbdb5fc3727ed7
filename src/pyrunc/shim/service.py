"""The containerd.task.v2.Task service, on pyrunc's library in-process.

Each task is a pyrunc container under the runtime root
<Options.root or /run/containerd/pyrunc>/<namespace> (runc's shim uses
/run/containerd/runc/<namespace> as runc's --root). Its processes (the init,
and one per exec id) are children of the shim, which is their subreaper:
the reaper thread collects their exit statuses and publishes TaskExit.

Library calls and the reaping share one lock: the library waits for its own
short-lived children (the stage child, an exec's intermediate), which a
waitpid(-1) running at the same time would take from it. Events go through
one queue, in the order they were made (containerd's: create, start, exit,
delete; exec-added, exec-started, exit).
"""
from __future__ import annotations

import os
import queue
import threading
from time import time_ns

TYPE_CHECKING = False  # typing: 4 ms of the server's start (see ttrpc)

from pyrunc.shim import messages as m
from pyrunc.shim.protobuf import Any, Empty, Message, Timestamp
from pyrunc.shim.ttrpc import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unimplemented, spawn

if TYPE_CHECKING:
    from typing import Callable

    from pyrunc.shim.logger import BinaryLogger
    from pyrunc.shim.ttrpc import Handler
    from pyrunc.shim.stdio import Console

DEFAULT_ROOT = "/run/containerd/pyrunc"
SPEC_PROCESS = "types.containerd.io/opencontainers/runtime-spec/1/Process"
# how often an event that containerd did not take is tried again (runc's shim: maxRequeue)
EVENT_RETRIES = 5


class Proc:
    """The init or an exec: its pid, status and exit."""

    def __init__(self, exec_id: str, stdio, spec: dict | None = None) -> None:
        self.exec_id = exec_id
        self.stdio = stdio
        self.spec = spec
        self.pid = 0
        self.status = m.CREATED
        self.exit_status = 0
        self.exited_at: Timestamp | None = None
        self.exited = threading.Event()
        self.console: Console | None = None
        self.restore: dict | None = None  # an init from a checkpoint: restored at Start (runc's shim)

    def set_exited(self, status: int) -> None:
        self.exit_status = status
        self.exited_at = Timestamp.now()
        self.status = m.STOPPED
        self.exited.set()


class Task:
    def __init__(self, cid: str, bundle: str, root: str, init: Proc, mounted: bool) -> None:
        import pyrunc
        self.id = cid
        self.bundle = bundle
        self.root = root
        self.container = pyrunc.Container(cid, root)
        self.init = init
        self.execs: dict[str, Proc] = {}
        self.mounted = mounted
        self.oom_stop = threading.Event()

    def proc(self, exec_id: str) -> Proc:
        if not exec_id:
            return self.init
        p = self.execs.get(exec_id)
        if p is None:
            raise NotFound(f"process {exec_id} does not exist")
        return p


def _status(code: int) -> int:
    return os.WEXITSTATUS(code) if os.WIFEXITED(code) else 128 + os.WTERMSIG(code)


class TaskService:
    """The shim's tasks, the reaper and the event queue; Shutdown ends the
    process (on_shutdown) once no task is left."""

    def __init__(self, on_shutdown: Callable[[], None], namespace: str = "", publisher=None) -> None:
        self.tasks: dict[str, Task] = {}
        self.namespace = namespace
        self._lock = threading.RLock()  # the tasks, library calls and reaping
        self._pids: dict[int, tuple[Task, Proc]] = {}
        self._loggers: dict[int, BinaryLogger] = {}  # binary:// stdio's, reaped here too
        self._children = threading.Event()
        self._on_shutdown = on_shutdown
        self._events: queue.Queue = queue.Queue()
        self._publisher = publisher
        spawn(self._forward_loop)

    def start_reaper(self) -> None:
        """Become the subreaper of the containers' processes and reap them
        (the server's process only: waitpid(-1) takes every child)."""
        self._subreaper()
        spawn(_preload)
        spawn(self._reap_loop)

    # -- plumbing ----------------------------------------------------------------------

    @staticmethod
    def _subreaper() -> None:
        from pyrunc.linux import consts as C
        from pyrunc.linux import sys as L
        L.prctl(C.PR_SET_CHILD_SUBREAPER, 1)

    def _send(self, event: Message) -> None:
        self._events.put(event)

    def _forward_loop(self) -> None:
        while True:
            event = self._events.get()
            try:
                self._forward(event)
            finally:
                self._events.task_done()

    def _forward(self, event: Message) -> None:
        """One event to containerd, tried again 1, 2, ... 5 s after each
        failure (runc's shim requeues as often: containerd restarting comes
        back on the same ttrpc socket), then dropped. The queue waits
        meanwhile: what follows keeps containerd's order."""
        import time
        for attempt in range(1 + EVENT_RETRIES):
            try:
                if self._publisher is not None:
                    self._publisher.publish(event)
                return
            except Exception as e:  # noqa: BLE001 - logged, the shim goes on
                last = attempt == EVENT_RETRIES
                _log(f"publish {event.TOPIC}: {e}" + ("" if not last else " (dropped)"))
                if not last:
                    time.sleep(attempt + 1)

    def flush_events(self, timeout: float = 5.0) -> None:
        """Wait (a while) for the queued events to be forwarded."""
        q = self._events
        with q.all_tasks_done:
            q.all_tasks_done.wait_for(lambda: not q.unfinished_tasks, timeout)

    def _reap_loop(self) -> None:
        while True:
            try:
                os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                self._children.wait(1.0)
                self._children.clear()
                continue
            except InterruptedError:
                continue
            with self._lock:
                self._reap()

    def _reap(self) -> None:
        """Collect every exited child (with the lock held)."""
        while True:
            try:
                pid, code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            entry = self._pids.pop(pid, None)
            if entry is not None:
                self._exited(entry[0], entry[1], _status(code))
            elif pid in self._loggers:
                self._loggers.pop(pid).exited.set()

    def _exited(self, task: Task, p: Proc, status: int) -> None:
        if p.console is not None:
            p.console.close()  # the output is copied before the exit is told
        p.set_exited(status)
        self._send(m.TaskExit(container_id=task.id, id=p.exec_id or task.id, pid=p.pid,
                              exit_status=status, exited_at=p.exited_at))

    def _track(self, task: Task, p: Proc) -> None:
        """A started process, reaped from now on (or found gone already)."""
        self._pids[p.pid] = (task, p)
        self._children.set()

    def _gone(self, task: Task, p: Proc, status: int = 137) -> None:
        """A tracked process that the library reaped (a forced delete): it
        was killed."""
        if p.pid in self._pids and not p.exited.is_set():
            del self._pids[p.pid]
            self._exited(task, p, status)

    def _open_stdio(self, stdio, cid: str) -> tuple[int, int, int]:
        """The fds for a process (with the lock held: a logger it starts is
        known to the reaper before it can exit)."""
        fds = stdio.open(cid, self.namespace)
        self._register_logger(stdio)
        return fds

    def _register_logger(self, stdio) -> None:
        if stdio.logger is not None:
            self._loggers[stdio.logger.pid] = stdio.logger
            self._children.set()

    def _release_stdio(self, stdio) -> None:
        """The process's stdio is done with (deleted, or never made): the
        FIFOs' read ends closed, a logger stopped."""
        stdio.release()
        if stdio.logger is not None:
            self._register_logger(stdio)  # known to the reaper (again: a reaped one is `exited`)
            stdio.logger.stop(self._reap)
            self._loggers.pop(stdio.logger.pid, None)

    def _task(self, cid: str) -> Task:
        t = self.tasks.get(cid)
        if t is None:
            raise NotFound(f"container {cid} not found")
        return t

    # -- create, start, exec -----------------------------------------------------------

    def Create(self, req: m.CreateTaskRequest) -> m.CreateTaskResponse:
        from pyrunc.errors import PyruncError
        from pyrunc.shim import mounts
        from pyrunc.shim.stdio import ConsoleSocket, Console, Stdio
        opts = _runc_options(req.options)
        if req.checkpoint and req.terminal:
            raise Unimplemented("Create: restore from a checkpoint with a terminal is not supported")
        from pyrunc.cgroups import rearm_migration
        rearm_migration(opts.systemd_cgroup)  # the cgroup lock's grace period runs while we mount
        root = os.path.join(opts.root or DEFAULT_ROOT, self.namespace or "default")
        if opts.root:  # for `delete` after this shim died (runc's shim keeps them so too)
            _write_options(req.bundle, opts)
        with self._lock:
            if req.id in self.tasks:
                raise AlreadyExists(f"container {req.id}: already exists")
            from pyrunc.shim.deleted import forget_deleted
            forget_deleted(req.bundle)  # before anything of this task exists
            rootfs = os.path.join(req.bundle, "rootfs")
            mounted = False
            stdio = Stdio(req.stdin, req.stdout, req.stderr, req.terminal)
            csock = None
            import pyrunc
            try:
                if req.rootfs:
                    try:
                        mounts.mount_all(list(req.rootfs), rootfs)
                    except OSError as e:
                        raise InvalidArgument(f"failed to mount rootfs component: {e.strerror or e}") from None
                    mounted = True
                init = Proc("", stdio)
                if req.checkpoint:  # as runc's shim: `runc restore --detach` at Start
                    init.restore = {"image-path": req.checkpoint, "parent": req.parent_checkpoint,
                                    "work-path": opts.criu_work_path or os.path.join(req.bundle, "work"),
                                    "no-pivot": opts.no_pivot_root, "systemd-cgroup": opts.systemd_cgroup}
                    os.makedirs(root, mode=0o711, exist_ok=True)
                    task = Task(req.id, req.bundle, root, init, mounted)
                    return self._created(req, task)
                kw: dict = dict(no_pivot=opts.no_pivot_root, no_new_keyring=opts.no_new_keyring,
                                systemd_cgroup=opts.systemd_cgroup)
                if req.terminal:
                    csock = ConsoleSocket()
                    kw["console_socket"] = csock.path
                else:
                    kw["stdio"] = self._open_stdio(stdio, req.id)
                os.makedirs(root, mode=0o711, exist_ok=True)
                try:
                    c = pyrunc.Container.create(req.id, req.bundle, root, **kw)
                except PyruncError as e:
                    raise RuntimeError(f"OCI runtime create failed: {e}") from None
                task = Task(req.id, req.bundle, root, init, mounted)
                if csock is not None:
                    init.console = Console(csock.receive(), stdio, req.id, self.namespace)
                    self._register_logger(stdio)
                init.pid = c.state().pid
            except BaseException:
                if csock is not None:
                    try:
                        pyrunc.Container(req.id, root).delete(force=True)
                    except Exception:  # noqa: BLE001
                        pass
                if mounted:
                    mounts.unmount_all(rootfs)
                stdio.close()
                self._release_stdio(stdio)
                raise
            finally:
                if csock is not None:
                    csock.close()
            stdio.close()
            self._track(task, init)
            self._watch_oom(task)
            return self._created(req, task)

    def _created(self, req: m.CreateTaskRequest, task: Task) -> m.CreateTaskResponse:
        """A new task (with the lock held); a restored one has no pid until Start."""
        self.tasks[req.id] = task
        self._send(m.TaskCreate(container_id=req.id, bundle=req.bundle, rootfs=list(req.rootfs),
                                io=m.TaskIO(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr,
                                            terminal=req.terminal), checkpoint=req.checkpoint,
                                pid=task.init.pid))
        return m.CreateTaskResponse(pid=task.init.pid)

    def Start(self, req: m.StartRequest) -> m.StartResponse:
        from pyrunc.errors import PyruncError
        with self._lock:
            task = self._task(req.id)
            p = task.proc(req.exec_id)
            if p.status != m.CREATED:
                raise FailedPrecondition(f"process {p.exec_id or task.id}: cannot start a process that is "
                                         + ("stopped" if p.status == m.STOPPED else "running"))
            if not req.exec_id:
                if p.restore is not None:
                    self._restore(task, p)
                else:
                    try:
                        task.container.start()
                    except PyruncError as e:
                        raise RuntimeError(f"OCI runtime start failed: {e}") from None
                p.status = m.RUNNING
                self._send(m.TaskStart(container_id=task.id, pid=p.pid))
                return m.StartResponse(pid=p.pid)
            self._start_exec(task, p)
            self._send(m.TaskExecStarted(container_id=task.id, exec_id=p.exec_id, pid=p.pid))
            return m.StartResponse(pid=p.pid)

    def _restore(self, task: Task, p: Proc) -> None:
        """The init from its checkpoint: the code of `pyrunc restore --detach`,
        with the stdio FIFOs as the restored process's fds 0-2 (CRIU's
        inherit_fd for the dump's stdio). Its process is our child (CRIU's
        sibling), reaped as a started init's."""
        import tempfile

        from pyrunc.criu.restore import RestoreOptions, restore
        from pyrunc.errors import PyruncError
        r = p.restore or {}
        if r["parent"]:
            raise InvalidArgument("restore: a parent checkpoint is not supported")
        tmp = tempfile.mkdtemp(prefix="pyrunc-shim-restore")
        pid_file = os.path.join(tmp, "pid")
        try:
            fds = self._open_stdio(p.stdio, task.id)
            ro = RestoreOptions(bundle=task.bundle, detach=True, pid_file=pid_file, no_subreaper=True,
                                no_pivot=r["no-pivot"], systemd_cgroup=r["systemd-cgroup"], stdio=fds)
            try:
                restore(task.root, task.id, {"image-path": r["image-path"], "work-path": r["work-path"]}, ro)
            except PyruncError as e:
                self._release_stdio(p.stdio)  # a later Start opens them again
                raise RuntimeError(f"OCI runtime restore failed: {e}") from None
            with open(pid_file) as f:
                p.pid = int(f.read().strip())
        finally:
            p.stdio.close()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        p.restore = None
        self._track(task, p)
        self._watch_oom(task)

    def _start_exec(self, task: Task, p: Proc) -> None:
        import tempfile

        import pyrunc
        from pyrunc.errors import PyruncError
        from pyrunc.shim.stdio import ConsoleSocket, Console
        tmp = tempfile.mkdtemp(prefix="pyrunc-shim-exec")
        pid_file = os.path.join(tmp, "pid")
        csock = None
        try:
            kw: dict = {}
            if p.stdio.terminal:
                csock = ConsoleSocket()
                kw["console_socket"] = csock.path
            else:
                kw["stdio"] = self._open_stdio(p.stdio, p.exec_id)
            try:
                task.container.exec(pyrunc.ExecOptions(process=p.spec, detach=True, pid_file=pid_file, **kw))
            except PyruncError as e:
                raise RuntimeError(f"OCI runtime exec failed: {e}") from None
            with open(pid_file) as f:
                p.pid = int(f.read().strip())
            if csock is not None:
                p.console = Console(csock.receive(), p.stdio, p.exec_id, self.namespace)
                self._register_logger(p.stdio)
        finally:
            p.stdio.close()
            if csock is not None:
                csock.close()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        p.status = m.RUNNING
        self._track(task, p)

    def Exec(self, req: m.ExecProcessRequest) -> Empty:
        from pyrunc.fastjson import loads
        from pyrunc.shim.stdio import Stdio
        with self._lock:
            task = self._task(req.id)
            if req.exec_id in task.execs:
                raise AlreadyExists(f"id {req.exec_id}: already exists")
            if task.init.status == m.STOPPED:
                raise FailedPrecondition("container must be created or running to exec a process")
            try:
                spec = loads(req.spec.value) if req.spec is not None else None
            except ValueError:
                spec = None
            if not isinstance(spec, dict):
                raise InvalidArgument("exec: the process spec is not a JSON object")
            spec["terminal"] = bool(req.terminal)
            task.execs[req.exec_id] = Proc(req.exec_id, Stdio(req.stdin, req.stdout, req.stderr, req.terminal),
                                           spec)
            self._send(m.TaskExecAdded(container_id=task.id, exec_id=req.exec_id))
        return Empty()

    # -- queries -----------------------------------------------------------------------

    def State(self, req: m.StateRequest) -> m.StateResponse:
        with self._lock:
            task = self._task(req.id)
            p = task.proc(req.exec_id)
            status = p.status
            if not req.exec_id and status == m.RUNNING:
                try:
                    status = {"paused": m.PAUSED, "stopped": m.STOPPED}.get(task.container.status, status)
                except Exception:  # noqa: BLE001 - the state is gone: as stopped
                    status = m.STOPPED
            s = p.stdio
            return m.StateResponse(id=p.exec_id or task.id, bundle=task.bundle, pid=p.pid, status=status,
                                   stdin=s.stdin, stdout=s.stdout, stderr=s.stderr, terminal=s.terminal,
                                   exit_status=p.exit_status, exited_at=p.exited_at, exec_id=p.exec_id)

    def Wait(self, req: m.WaitRequest) -> m.WaitResponse:
        with self._lock:
            p = self._task(req.id).proc(req.exec_id)
        p.exited.wait()
        return m.WaitResponse(exit_status=p.exit_status, exited_at=p.exited_at)

    def Pids(self, req: m.PidsRequest) -> m.PidsResponse:
        from pyrunc.cgroups import Manager
        from pyrunc.container.ops import load
        with self._lock:
            task = self._task(req.id)
            try:
                sd, st, _ = load(task.root, task.id, shared=True)
                sd.unlock()
                pids = sorted(Manager(st.get("cgroup_paths") or {}).pids())
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"failed to list pids: {e}") from None
            execs = {p.pid: p.exec_id for p in task.execs.values() if p.pid}
            out = []
            for pid in pids:
                info = m.ProcessInfo(pid=pid)
                if pid in execs:
                    info.info = Any.pack(m.ProcessDetails(exec_id=execs[pid]))
                out.append(info)
            return m.PidsResponse(processes=out)

    def Stats(self, req: m.StatsRequest) -> m.StatsResponse:
        from pyrunc.cgroups.stats import collect
        from pyrunc.shim.metrics import metrics
        with self._lock:
            task = self._task(req.id)
            try:  # the library's own shape (Container.stats() is runc's JSON: cpu.usage.total, ...)
                paths = _cgroup_paths(task)
                stats = collect(paths)
            except Exception as e:  # noqa: BLE001
                raise RuntimeError(f"failed to get stats: {e}") from None
        return m.StatsResponse(stats=metrics(stats, paths))

    def Connect(self, req: m.ConnectRequest) -> m.ConnectResponse:
        # containerd's runc shim gives its own pid and the task's (0 if none)
        t = self.tasks.get(req.id)
        return m.ConnectResponse(shim_pid=os.getpid(), task_pid=t.init.pid if t else 0)

    # -- signals and changes -----------------------------------------------------------

    def Kill(self, req: m.KillRequest) -> Empty:
        from pyrunc.errors import PyruncError
        with self._lock:
            task = self._task(req.id)
            p = task.proc(req.exec_id)
            if p.exec_id:
                if p.status == m.CREATED:
                    raise FailedPrecondition("process not created")
                if p.status == m.STOPPED:
                    raise NotFound("process already finished")
                try:
                    os.kill(p.pid, req.signal)
                except ProcessLookupError:
                    raise NotFound("process already finished") from None
                return Empty()
            if p.status == m.STOPPED and not req.all:
                raise NotFound(f"process {task.id} not found")
            if p.restore is not None:  # never restored: no process, gone as if killed (`ctr task rm -f`)
                p.restore = None
                self._exited(task, p, 128 + req.signal)
                return Empty()
            try:
                task.container.kill(req.signal, all_processes=req.all)
            except PyruncError as e:
                text = str(e)
                if p.status == m.STOPPED or "not running" in text or "does not exist" in text:
                    raise NotFound("process already finished") from None
                raise RuntimeError(f"unable to signal init: {text}") from None
        return Empty()

    def Pause(self, req: m.PauseRequest) -> Empty:
        self._lib_call(req.id, "pause", m.TaskPaused)
        return Empty()

    def Resume(self, req: m.ResumeRequest) -> Empty:
        self._lib_call(req.id, "resume", m.TaskResumed)
        return Empty()

    def _lib_call(self, cid: str, what: str, event: type[Message]) -> None:
        from pyrunc.errors import InvalidState, PyruncError
        with self._lock:
            task = self._task(cid)
            try:
                getattr(task.container, what)()
            except InvalidState as e:
                raise FailedPrecondition(str(e)) from None
            except PyruncError as e:
                raise RuntimeError(f"OCI runtime {what} failed: {e}") from None
            self._send(event(container_id=cid))

    def Update(self, req: m.UpdateTaskRequest) -> Empty:
        from pyrunc.errors import PyruncError
        from pyrunc.fastjson import loads
        with self._lock:
            task = self._task(req.id)
            try:
                resources = loads(req.resources.value) if req.resources is not None else {}
            except ValueError:
                resources = None
            if not isinstance(resources, dict):
                raise InvalidArgument("update: the resources are not a JSON object")
            try:
                task.container.update(resources)
            except PyruncError as e:
                raise RuntimeError(f"OCI runtime update failed: {e}") from None
        return Empty()

    def ResizePty(self, req: m.ResizePtyRequest) -> Empty:
        with self._lock:
            p = self._task(req.id).proc(req.exec_id)
            if p.console is None:
                raise FailedPrecondition("process does not have a terminal")
            p.console.resize(req.width, req.height)
        return Empty()

    def CloseIO(self, req: m.CloseIORequest) -> Empty:
        with self._lock:
            p = self._task(req.id).proc(req.exec_id)
            # without a terminal the container holds the stdin FIFO itself and
            # sees EOF when the client closes its end: nothing of ours to close
            if req.stdin and p.console is not None:
                p.console.close_stdin()
        return Empty()

    def Checkpoint(self, req: m.CheckpointTaskRequest) -> Empty:
        from pyrunc.criu.checkpoint import checkpoint
        from pyrunc.errors import PyruncError
        opts = m.CheckpointOptions()
        if req.options is not None and req.options.type_url.rpartition("/")[2] == m.CheckpointOptions.NAME:
            opts = m.CheckpointOptions.decode(req.options.value)
        # as runc's shim: CRIU works in <bundle>/criu-work, removed afterwards;
        # a failed dump's log is kept as <bundle>/criu-dump.log
        work = opts.work_path or ""
        flags = {"image-path": req.path or opts.image_path, "work-path": work,
                 "leave-running": not opts.exit, "tcp-established": opts.open_tcp,
                 "ext-unix-sk": opts.external_unix_sockets, "shell-job": opts.terminal,
                 "file-locks": opts.file_locks, "empty-ns": list(opts.empty_namespaces),
                 "manage-cgroups-mode": opts.cgroups_mode}
        with self._lock:
            task = self._task(req.id)
            if not work:
                flags["work-path"] = os.path.join(task.bundle, "criu-work")
            try:
                checkpoint(task.root, task.id, flags)
            except PyruncError as e:
                import shutil
                log, kept, text = os.path.join(flags["work-path"], "dump.log"), "", str(e)
                if not work and os.path.exists(log):
                    kept = os.path.join(task.bundle, "criu-dump.log")
                    shutil.copyfile(log, kept)
                    text = text.replace(log, kept)
                raise RuntimeError(f"OCI runtime checkpoint failed: {text}") from None
            finally:
                if not work:
                    import shutil
                    shutil.rmtree(flags["work-path"], ignore_errors=True)
            self._send(m.TaskCheckpointed(container_id=task.id, checkpoint=req.path))
        return Empty()

    # -- the end -----------------------------------------------------------------------

    def Delete(self, req: m.DeleteRequest) -> m.DeleteResponse:
        from pyrunc.errors import ContainerNotFound, PyruncError
        from pyrunc.shim import mounts
        with self._lock:
            task = self._task(req.id)
            p = task.proc(req.exec_id)
            if p.status == m.RUNNING and not p.exited.is_set():
                if p.exec_id or task.container.status != "stopped":
                    raise FailedPrecondition(f"cannot delete a running process")
            if p.exec_id:
                del task.execs[p.exec_id]
                self._release_stdio(p.stdio)
                p.exited.set()  # a Wait on a process that never started ends with it
                return m.DeleteResponse(pid=p.pid, exit_status=p.exit_status, exited_at=p.exited_at)
            try:
                task.container.delete(force=True)
            except ContainerNotFound:
                pass
            except PyruncError as e:
                raise RuntimeError(f"OCI runtime delete failed: {e}") from None
            self._reap()
            self._gone(task, p)
            for ex in list(task.execs.values()):
                self._pids.pop(ex.pid, None)
                self._release_stdio(ex.stdio)
                ex.exited.set()
            self._release_stdio(p.stdio)
            task.oom_stop.set()
            if task.mounted:
                mounts.unmount_all(os.path.join(task.bundle, "rootfs"))
            # nothing of the task is left (a rootfs mounted by another, which
            # `delete` unmounts, is): containerd's `delete` need not look
            if not os.path.ismount(os.path.join(task.bundle, "rootfs")):
                from pyrunc.shim.deleted import own_start_time, record_deleted
                try:
                    record_deleted(task.bundle, time_ns(), (os.getpid(), own_start_time()))
                except OSError as e:
                    _log(f"delete {task.id}: no record for `delete`: {e.strerror}")
            del self.tasks[task.id]
            self._send(m.TaskDelete(container_id=task.id, pid=p.pid, exit_status=p.exit_status,
                                    exited_at=p.exited_at))
            return m.DeleteResponse(pid=p.pid, exit_status=p.exit_status, exited_at=p.exited_at)

    def Shutdown(self, req: m.ShutdownRequest) -> Empty:
        # as runc's shim: a shim that still serves tasks stays, `now` or not
        # the events still queued are sent after this reply, before the
        # process exits (serve), as runc's shim: containerd's next step, the
        # `delete` it runs, need not wait for them
        with self._lock:
            if self.tasks:
                return Empty()
        self._on_shutdown()
        return Empty()

    # -- OOM ---------------------------------------------------------------------------

    def _watch_oom(self, task: Task) -> None:
        """In a thread of its own from the start: its imports and the
        cgroup's files are not Create's business."""
        spawn(self._oom_setup, task)

    def _oom_setup(self, task: Task) -> None:
        try:
            from pyrunc.cgroups.notify import OOMNotifier
            n = OOMNotifier.open(_cgroup_paths(task))
        except Exception as e:  # noqa: BLE001 - no OOM events, the task runs
            _log(f"oom watch {task.id}: {e}")
            return
        if n is not None:
            self._oom_loop(task, n)

    def _oom_loop(self, task: Task, n) -> None:
        import select
        poll = select.poll()
        poll.register(n.fileno(), n.events)
        try:
            while not task.oom_stop.is_set():
                if not poll.poll(500):
                    continue
                r = n.read()
                if r < 0:
                    return
                if r > 0:
                    self._send(m.TaskOOM(container_id=task.id))
        finally:
            n.close()

    def handlers(self) -> dict[str, Handler]:
        """Method name -> bytes handler, for ttrpc.Server.register."""
        table: dict[str, Handler] = {}
        for name, (req_cls, _resp_cls) in m.TASK_METHODS.items():
            impl = getattr(self, name, None)
            table[name] = _wrap(req_cls, impl) if impl is not None else _unimplemented(name)
        return table


def _preload() -> None:
    """Import what the first Create needs while containerd is still on its
    way to call it (the server has just been forked), and what the stage
    child needs, so that each fork of the server has it loaded."""
    import pyrunc.container.launch  # noqa: F401
    import pyrunc.container.ops  # noqa: F401
    from pyrunc.init.stage import Stage
    Stage.preload_shared(run=False)
    import pyrunc.shim.stdio  # noqa: F401


def _cgroup_paths(task: Task) -> dict:
    from pyrunc.container.ops import load
    sd, st, _ = load(task.root, task.id, shared=True)
    sd.unlock()
    return st.get("cgroup_paths") or {}


def _write_options(bundle: str, opts: m.Options) -> None:
    from pyrunc.fastjson import dumps
    try:
        with open(os.path.join(bundle, "options.json"), "w") as f:
            f.write(dumps({"root": opts.root}))
    except OSError as e:
        _log(f"write options.json: {e}")


def _runc_options(any_: Any | None) -> m.Options:
    if any_ is not None and any_.type_url.rpartition("/")[2] == m.Options.NAME:
        return m.Options.decode(any_.value)
    return m.Options()


def _log(text: str) -> None:
    try:
        os.write(2, f"pyrunc-shim: {text}\n".encode())
    except OSError:
        pass


def _wrap(req_cls: type[Message], impl: Callable[[Message], Message]) -> Handler:
    def handler(payload: bytes) -> bytes:
        return impl(req_cls.decode(payload)).encode()
    return handler


def _unimplemented(name: str) -> Handler:
    def handler(payload: bytes) -> bytes:
        raise Unimplemented(f"{name}: not implemented")
    return handler
