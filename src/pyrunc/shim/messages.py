"""The protobuf messages a containerd 1.6 shim exchanges with containerd.

Field numbers and names follow containerd v1.6's .proto files (cited per
group below); the classes are written here on shim.protobuf, not generated.
NAME is each message's full protobuf name: containerd's typeurl puts it, with
no prefix, in an Any's type_url (events, the runc options).
"""
from __future__ import annotations

from pyrunc.shim.protobuf import Any, Empty, Field, Map, Message, Timestamp

__all__ = ["Any", "Empty", "Timestamp"]  # re-exported: the Task service uses them

# -- api/types/mount.proto (containerd.types) -------------------------------------


class Mount(Message):
    NAME = "containerd.types.Mount"
    FIELDS = (Field(1, "type", "string"), Field(2, "source", "string"), Field(3, "target", "string"),
              Field(4, "options", "string", repeated=True))


# -- api/types/task/task.proto (containerd.v1.types) ------------------------------

# enum Status
UNKNOWN, CREATED, RUNNING, STOPPED, PAUSED, PAUSING = range(6)


class ProcessInfo(Message):
    NAME = "containerd.v1.types.ProcessInfo"
    FIELDS = (Field(1, "pid", "uint32"), Field(2, "info", Any))


# -- api/runtime/task/v2/shim.proto (containerd.task.v2, service Task) -------------

_ID = Field(1, "id", "string")
_EXEC_ID = Field(2, "exec_id", "string")


class CreateTaskRequest(Message):
    NAME = "containerd.task.v2.CreateTaskRequest"
    FIELDS = (_ID, Field(2, "bundle", "string"), Field(3, "rootfs", Mount, repeated=True),
              Field(4, "terminal", "bool"), Field(5, "stdin", "string"), Field(6, "stdout", "string"),
              Field(7, "stderr", "string"), Field(8, "checkpoint", "string"),
              Field(9, "parent_checkpoint", "string"), Field(10, "options", Any))


class CreateTaskResponse(Message):
    NAME = "containerd.task.v2.CreateTaskResponse"
    FIELDS = (Field(1, "pid", "uint32"),)


class DeleteRequest(Message):
    NAME = "containerd.task.v2.DeleteRequest"
    FIELDS = (_ID, _EXEC_ID)


class DeleteResponse(Message):
    NAME = "containerd.task.v2.DeleteResponse"
    FIELDS = (Field(1, "pid", "uint32"), Field(2, "exit_status", "uint32"), Field(3, "exited_at", Timestamp))


class ExecProcessRequest(Message):
    """spec: the process as JSON, type_url
    types.containerd.io/opencontainers/runtime-spec/1/Process."""
    NAME = "containerd.task.v2.ExecProcessRequest"
    FIELDS = (_ID, _EXEC_ID, Field(3, "terminal", "bool"), Field(4, "stdin", "string"),
              Field(5, "stdout", "string"), Field(6, "stderr", "string"), Field(7, "spec", Any))


class ExecProcessResponse(Message):
    NAME = "containerd.task.v2.ExecProcessResponse"


class ResizePtyRequest(Message):
    NAME = "containerd.task.v2.ResizePtyRequest"
    FIELDS = (_ID, _EXEC_ID, Field(3, "width", "uint32"), Field(4, "height", "uint32"))


class StateRequest(Message):
    NAME = "containerd.task.v2.StateRequest"
    FIELDS = (_ID, _EXEC_ID)


class StateResponse(Message):
    """status: one of the Status values above."""
    NAME = "containerd.task.v2.StateResponse"
    FIELDS = (_ID, Field(2, "bundle", "string"), Field(3, "pid", "uint32"), Field(4, "status", "enum"),
              Field(5, "stdin", "string"), Field(6, "stdout", "string"), Field(7, "stderr", "string"),
              Field(8, "terminal", "bool"), Field(9, "exit_status", "uint32"),
              Field(10, "exited_at", Timestamp), Field(11, "exec_id", "string"))


class KillRequest(Message):
    NAME = "containerd.task.v2.KillRequest"
    FIELDS = (_ID, _EXEC_ID, Field(3, "signal", "uint32"), Field(4, "all", "bool"))


class CloseIORequest(Message):
    NAME = "containerd.task.v2.CloseIORequest"
    FIELDS = (_ID, _EXEC_ID, Field(3, "stdin", "bool"))


class PidsRequest(Message):
    NAME = "containerd.task.v2.PidsRequest"
    FIELDS = (_ID,)


class PidsResponse(Message):
    NAME = "containerd.task.v2.PidsResponse"
    FIELDS = (Field(1, "processes", ProcessInfo, repeated=True),)


class CheckpointTaskRequest(Message):
    NAME = "containerd.task.v2.CheckpointTaskRequest"
    FIELDS = (_ID, Field(2, "path", "string"), Field(3, "options", Any))


class UpdateTaskRequest(Message):
    """resources: LinuxResources as JSON, type_url
    types.containerd.io/opencontainers/runtime-spec/1/LinuxResources."""
    NAME = "containerd.task.v2.UpdateTaskRequest"
    FIELDS = (_ID, Field(2, "resources", Any), Field(3, "annotations", Map("string", "string")))


class StartRequest(Message):
    NAME = "containerd.task.v2.StartRequest"
    FIELDS = (_ID, _EXEC_ID)


class StartResponse(Message):
    NAME = "containerd.task.v2.StartResponse"
    FIELDS = (Field(1, "pid", "uint32"),)


class WaitRequest(Message):
    NAME = "containerd.task.v2.WaitRequest"
    FIELDS = (_ID, _EXEC_ID)


class WaitResponse(Message):
    NAME = "containerd.task.v2.WaitResponse"
    FIELDS = (Field(1, "exit_status", "uint32"), Field(2, "exited_at", Timestamp))


class StatsRequest(Message):
    NAME = "containerd.task.v2.StatsRequest"
    FIELDS = (_ID,)


class StatsResponse(Message):
    NAME = "containerd.task.v2.StatsResponse"
    FIELDS = (Field(1, "stats", Any),)


class ConnectRequest(Message):
    NAME = "containerd.task.v2.ConnectRequest"
    FIELDS = (_ID,)


class ConnectResponse(Message):
    NAME = "containerd.task.v2.ConnectResponse"
    FIELDS = (Field(1, "shim_pid", "uint32"), Field(2, "task_pid", "uint32"), Field(3, "version", "string"))


class ShutdownRequest(Message):
    NAME = "containerd.task.v2.ShutdownRequest"
    FIELDS = (_ID, Field(2, "now", "bool"))


class PauseRequest(Message):
    NAME = "containerd.task.v2.PauseRequest"
    FIELDS = (_ID,)


class ResumeRequest(Message):
    NAME = "containerd.task.v2.ResumeRequest"
    FIELDS = (_ID,)


TASK_SERVICE = "containerd.task.v2.Task"
# method -> (request, response), as shim.proto's `service Task` declares them
TASK_METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "State": (StateRequest, StateResponse),
    "Create": (CreateTaskRequest, CreateTaskResponse),
    "Start": (StartRequest, StartResponse),
    "Delete": (DeleteRequest, DeleteResponse),
    "Pids": (PidsRequest, PidsResponse),
    "Pause": (PauseRequest, Empty),
    "Resume": (ResumeRequest, Empty),
    "Checkpoint": (CheckpointTaskRequest, Empty),
    "Kill": (KillRequest, Empty),
    "Exec": (ExecProcessRequest, Empty),
    "ResizePty": (ResizePtyRequest, Empty),
    "CloseIO": (CloseIORequest, Empty),
    "Update": (UpdateTaskRequest, Empty),
    "Wait": (WaitRequest, WaitResponse),
    "Stats": (StatsRequest, StatsResponse),
    "Connect": (ConnectRequest, ConnectResponse),
    "Shutdown": (ShutdownRequest, Empty),
}

# -- api/events/task.proto (containerd.events) --------------------------------------


class TaskIO(Message):
    NAME = "containerd.events.TaskIO"
    FIELDS = (Field(1, "stdin", "string"), Field(2, "stdout", "string"), Field(3, "stderr", "string"),
              Field(4, "terminal", "bool"))


class TaskCreate(Message):
    NAME = "containerd.events.TaskCreate"
    TOPIC = "/tasks/create"
    FIELDS = (Field(1, "container_id", "string"), Field(2, "bundle", "string"),
              Field(3, "rootfs", Mount, repeated=True), Field(4, "io", TaskIO),
              Field(5, "checkpoint", "string"), Field(6, "pid", "uint32"))


class TaskStart(Message):
    NAME = "containerd.events.TaskStart"
    TOPIC = "/tasks/start"
    FIELDS = (Field(1, "container_id", "string"), Field(2, "pid", "uint32"))


class TaskDelete(Message):
    NAME = "containerd.events.TaskDelete"
    TOPIC = "/tasks/delete"
    FIELDS = (Field(1, "container_id", "string"), Field(2, "pid", "uint32"), Field(3, "exit_status", "uint32"),
              Field(4, "exited_at", Timestamp), Field(5, "id", "string"))


class TaskExit(Message):
    NAME = "containerd.events.TaskExit"
    TOPIC = "/tasks/exit"
    FIELDS = (Field(1, "container_id", "string"), Field(2, "id", "string"), Field(3, "pid", "uint32"),
              Field(4, "exit_status", "uint32"), Field(5, "exited_at", Timestamp))


class TaskOOM(Message):
    NAME = "containerd.events.TaskOOM"
    TOPIC = "/tasks/oom"
    FIELDS = (Field(1, "container_id", "string"),)


class TaskExecAdded(Message):
    NAME = "containerd.events.TaskExecAdded"
    TOPIC = "/tasks/exec-added"
    FIELDS = (Field(1, "container_id", "string"), Field(2, "exec_id", "string"))


class TaskExecStarted(Message):
    NAME = "containerd.events.TaskExecStarted"
    TOPIC = "/tasks/exec-started"
    FIELDS = (Field(1, "container_id", "string"), Field(2, "exec_id", "string"), Field(3, "pid", "uint32"))


class TaskPaused(Message):
    NAME = "containerd.events.TaskPaused"
    TOPIC = "/tasks/paused"
    FIELDS = (Field(1, "container_id", "string"),)


class TaskResumed(Message):
    NAME = "containerd.events.TaskResumed"
    TOPIC = "/tasks/resumed"
    FIELDS = (Field(1, "container_id", "string"),)


class TaskCheckpointed(Message):
    NAME = "containerd.events.TaskCheckpointed"
    TOPIC = "/tasks/checkpointed"
    FIELDS = (Field(1, "container_id", "string"), Field(2, "checkpoint", "string"))


TASK_EVENTS: tuple[type[Message], ...] = (TaskCreate, TaskStart, TaskDelete, TaskExit, TaskOOM, TaskExecAdded,
                                          TaskExecStarted, TaskPaused, TaskResumed, TaskCheckpointed)

# -- api/services/ttrpc/events/v1/events.proto (containerd.services.events.ttrpc.v1) --

EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"


class Envelope(Message):
    NAME = "containerd.services.events.ttrpc.v1.Envelope"
    FIELDS = (Field(1, "timestamp", Timestamp), Field(2, "namespace", "string"), Field(3, "topic", "string"),
              Field(4, "event", Any))


class ForwardRequest(Message):
    """Events/Forward's request (its reply is Empty)."""
    NAME = "containerd.services.events.ttrpc.v1.ForwardRequest"
    FIELDS = (Field(1, "envelope", Envelope),)


# -- runtime/v2/runc/options/oci.proto (containerd.runc.v1) -----------------------------
# CRI passes Options in CreateTaskRequest.options (and on `start`'s stdin) for
# every runtime whose config has an options table.


class Options(Message):
    NAME = "containerd.runc.v1.Options"
    FIELDS = (Field(1, "no_pivot_root", "bool"), Field(2, "no_new_keyring", "bool"),
              Field(3, "shim_cgroup", "string"), Field(4, "io_uid", "uint32"), Field(5, "io_gid", "uint32"),
              Field(6, "binary_name", "string"), Field(7, "root", "string"), Field(8, "criu_path", "string"),
              Field(9, "systemd_cgroup", "bool"), Field(10, "criu_image_path", "string"),
              Field(11, "criu_work_path", "string"))


class CheckpointOptions(Message):
    NAME = "containerd.runc.v1.CheckpointOptions"
    FIELDS = (Field(1, "exit", "bool"), Field(2, "open_tcp", "bool"), Field(3, "external_unix_sockets", "bool"),
              Field(4, "terminal", "bool"), Field(5, "file_locks", "bool"),
              Field(6, "empty_namespaces", "string", repeated=True), Field(7, "cgroups_mode", "string"),
              Field(8, "image_path", "string"), Field(9, "work_path", "string"))


class ProcessDetails(Message):
    NAME = "containerd.runc.v1.ProcessDetails"
    FIELDS = (Field(1, "exec_id", "string"),)


# type_url -> class, for Any.unpack
_TYPED: tuple[type[Message], ...] = (*TASK_EVENTS, Options, CheckpointOptions, ProcessDetails, Envelope, Empty,
                                    Timestamp)
TYPES: dict[str, type[Message]] = {cls.NAME: cls for cls in _TYPED}
