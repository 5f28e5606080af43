"""Sandboxes: isolated Linux environments with volumes mounted in them.

Example::

    with Sandbox.create(volumes=[volume.mount("/workspace/shared")]) as sandbox:
        print(sandbox.exec(["ls", "/workspace/shared"]).stdout)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Dict, Generic, List, Mapping, Optional, Sequence, Type, TypeVar, Union

import httpx

from ._client import BaseClient, Client, Op, resolve_client
from ._util import as_object, field, malformed, opt_field, time_field
from .volume import Mount

__all__ = ["Sandbox", "SandboxInfo", "Attachment", "ExecResult", "SandboxFiles", "SandboxVolumes"]

C = TypeVar("C", bound=BaseClient)


@dataclass(frozen=True)
class Attachment:
    """One volume attached to a sandbox (``state``: ``mounted``, ``released`` or ``failed``)."""

    id: str
    sandbox_id: str
    volume: str
    mount_path: str
    read_only: bool
    subpath: Optional[str]
    state: str
    error: Optional[str]
    created_at: Optional[datetime]
    updated_at: Optional[datetime]

    @classmethod
    def _from_json(cls, doc: object) -> "Attachment":
        d = as_object(doc, "attachment")
        w = "attachment"
        return cls(
            id=field(d, "id", str, w),
            sandbox_id=field(d, "sandbox_id", str, w),
            volume=field(d, "volume", str, w),
            mount_path=field(d, "mount_path", str, w),
            read_only=field(d, "read_only", bool, w),
            subpath=opt_field(d, "subpath", str, w),
            state=field(d, "state", str, w),
            error=opt_field(d, "error", str, w),
            created_at=time_field(d, "created_at", w),
            updated_at=time_field(d, "updated_at", w),
        )


@dataclass(frozen=True)
class SandboxInfo:
    """A sandbox record (``state``: ``running``, ``paused`` or ``hibernated``).

    ``server_id`` names the server that runs it: operations on it through another server
    sharing the database raise :class:`UnavailableError` naming that server. ``timeout`` is the
    lifetime given at create (seconds) and ``expires_at`` when the sandbox will be destroyed.
    ``cpu`` (cores), ``memory_bytes`` (hard memory limit), ``disk_bytes`` (cap of its own
    writable layer) and ``pids`` (most processes at once) are its limits. ``runtime`` is
    ``namespace`` or ``gvisor``.
    """

    id: str
    name: Optional[str]
    template: str
    state: str
    created_at: Optional[datetime]
    attachments: List[Attachment]
    server_id: Optional[str] = None
    timeout: Optional[int] = None
    expires_at: Optional[datetime] = None
    cpu: Optional[float] = None
    memory_bytes: Optional[int] = None
    disk_bytes: Optional[int] = None
    pids: Optional[int] = None
    runtime: Optional[str] = None

    @classmethod
    def _from_json(cls, doc: object) -> "SandboxInfo":
        d = as_object(doc, "sandbox")
        w = "sandbox"
        return cls(
            id=field(d, "id", str, w),
            name=opt_field(d, "name", str, w),
            template=field(d, "template", str, w),
            state=field(d, "state", str, w),
            created_at=time_field(d, "created_at", w),
            attachments=[Attachment._from_json(a) for a in field(d, "attachments", list, w)],
            server_id=opt_field(d, "server_id", str, w),
            timeout=opt_field(d, "timeout", int, w),
            expires_at=time_field(d, "expires_at", w),
            cpu=_opt_number(d, "cpu", w),
            memory_bytes=opt_field(d, "memory_bytes", int, w),
            disk_bytes=opt_field(d, "disk_bytes", int, w),
            pids=opt_field(d, "pids", int, w),
            runtime=opt_field(d, "runtime", str, w),
        )


def _check_runtime(runtime: Optional[str]) -> Optional[str]:
    if runtime is not None and not isinstance(runtime, str):
        raise TypeError(f"runtime must be a str, not {type(runtime).__name__}")
    return runtime


def _opt_number(d: Mapping[str, Any], key: str, what: str) -> Optional[float]:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise malformed(f"{what}: {key!r} is not a number", d)
    return float(v)


def _check_cpu(cpu: Optional[float]) -> Optional[float]:
    if cpu is None:
        return None
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)):
        raise TypeError(f"cpu must be a number of cores, not {type(cpu).__name__}")
    return float(cpu)


def _check_size(name: str, value: Optional[Union[int, str]]) -> Optional[Union[int, str]]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{name} must be a byte count (int) or a size such as '512MiB', not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class ExecResult:
    """What a command did: its output and exit code.

    A stream that is UTF-8 text without NUL bytes is in ``stdout``/``stderr``; otherwise that
    string is empty and the server sent the bytes as base64 (``stdout_base64``/``stderr_base64``).
    ``stdout_bytes``/``stderr_bytes`` give the original bytes either way. ``timed_out`` says
    the command was killed at its timeout; ``truncated`` that its output passed the answer's
    budget (8 MiB of encoded output, both streams together) and was cut there; ``oom_killed``
    that the sandbox reached its memory limit while the command ran and the kernel killed a
    process of the sandbox.
    """

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    oom_killed: bool = False
    stdout_base64: Optional[str] = None
    stderr_base64: Optional[str] = None

    @property
    def stdout_bytes(self) -> bytes:
        """Standard output's bytes, text or not."""
        return _stream_bytes(self.stdout, self.stdout_base64)

    @property
    def stderr_bytes(self) -> bytes:
        """Standard error's bytes, text or not."""
        return _stream_bytes(self.stderr, self.stderr_base64)


def _stream_bytes(text: str, b64: Optional[str]) -> bytes:
    if b64 is None:
        return text.encode("utf-8")
    return base64.b64decode(b64, validate=True)


def _mount_body(m: Mount) -> Dict[str, Any]:
    if not isinstance(m, Mount):
        raise TypeError(f"expected a Mount (from volume.mount(...)), not {type(m).__name__}")
    return {"volume": m.volume, "mount_path": m.path, "read_only": m.read_only, "subpath": m.subpath}


def _check_str_map(name: str, value: Optional[Mapping[str, str]]) -> Dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of str to str")
    out: Dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{name} must be a mapping of str to str")
        out[k] = v
    return out


def op_create_sandbox(
    c: BaseClient,
    template: str,
    volumes: Optional[Sequence[Mount]],
    name: Optional[str],
    env: Optional[Mapping[str, str]],
    timeout: Optional[int],
    cpu: Optional[float],
    memory: Optional[Union[int, str]],
    disk: Optional[Union[int, str]],
    runtime: Optional[str],
) -> Op[str]:
    """Creates a sandbox (see ``Sandbox.create``); the result is its id."""
    body: Dict[str, Any] = {
        "template": template,
        "volumes": [_mount_body(m) for m in (volumes or [])],
        "name": name,
        "env": _check_str_map("env", env),
        "timeout": timeout,
    }
    for key, value in (
        ("cpu", _check_cpu(cpu)),
        ("memory", _check_size("memory", memory)),
        ("disk", _check_size("disk", disk)),
        ("runtime", _check_runtime(runtime)),
    ):
        if value is not None:
            body[key] = value
    doc = yield from c.op_json("POST", "/v1/sandboxes", json=body, idempotent=False)
    return SandboxInfo._from_json(doc).id


def op_list_sandboxes(c: BaseClient) -> Op[List[SandboxInfo]]:
    """This tenant's sandboxes."""
    doc = as_object((yield from c.op_json("GET", "/v1/sandboxes")), "sandbox list")
    return [SandboxInfo._from_json(s) for s in field(doc, "sandboxes", list, "sandbox list")]


def _exec_result(doc: object) -> ExecResult:
    d = as_object(doc, "exec result")
    return ExecResult(
        stdout=field(d, "stdout", str, "exec result"),
        stderr=field(d, "stderr", str, "exec result"),
        exit_code=field(d, "exit_code", int, "exec result"),
        timed_out=bool(d.get("timed_out", False)),
        truncated=bool(d.get("truncated", False)),
        oom_killed=bool(d.get("oom_killed", False)),
        stdout_base64=opt_field(d, "stdout_base64", str, "exec result"),
        stderr_base64=opt_field(d, "stderr_base64", str, "exec result"),
    )


class SandboxCore(Generic[C]):
    """The operations on one sandbox (see ``_client``), shared by :class:`Sandbox` and
    :class:`nullspace.aio.AsyncSandbox` (and their ``files`` and ``volumes``)."""

    def __init__(self, id: str, client: C) -> None:
        if not isinstance(id, str) or not id:
            raise TypeError("id must be a non-empty str")
        self._id = id
        self._client: C = client

    @property
    def id(self) -> str:
        """The sandbox id."""
        return self._id

    def _url(self, rest: str = "") -> str:
        return f"/v1/sandboxes/{self._id}{rest}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self._id!r})"

    def _op_info(self) -> Op[SandboxInfo]:
        return SandboxInfo._from_json((yield from self._client.op_json("GET", self._url())))

    def _op_exec(
        self,
        cmd: Union[str, Sequence[str]],
        env: Optional[Mapping[str, str]],
        cwd: Optional[str],
        stdin: Optional[str],
        timeout: Optional[float],
    ) -> Op[ExecResult]:
        if isinstance(cmd, str):
            command: Union[str, List[str]] = cmd
        else:
            command = list(cmd)
            if not all(isinstance(a, str) for a in command):
                raise TypeError("cmd must be a str or a sequence of str")
        body = {
            "cmd": command,
            "env": _check_str_map("env", env),
            "cwd": cwd,
            "stdin": stdin,
            "timeout": timeout,
        }
        http_timeout = httpx.Timeout(None if timeout is None else timeout + 60.0, connect=10.0)
        doc = yield from self._client.op_json(
            "POST", self._url("/exec"), json=body, idempotent=False, timeout=http_timeout
        )
        return _exec_result(doc)

    def _op_lifecycle(self, op: str) -> Op[SandboxInfo]:
        doc = yield from self._client.op_json("POST", self._url(f"/{op}"), idempotent=False)
        return SandboxInfo._from_json(doc)

    def _op_destroy(self) -> Op[None]:
        yield from self._client.op_request("DELETE", self._url())

    def _op_read_file(self, path: str) -> Op[bytes]:
        r = yield from self._client.op_request("GET", self._url("/files/content"), params={"path": path})
        return r.content

    def _op_read_text(self, path: str) -> Op[str]:
        return (yield from self._op_read_file(path)).decode("utf-8")

    def _op_write_file(self, path: str, data: Union[str, bytes]) -> Op[None]:
        if isinstance(data, str):
            body = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray)):
            body = bytes(data)
        else:
            raise TypeError(f"data must be str or bytes, not {type(data).__name__}")
        yield from self._client.op_request(
            "PUT",
            self._url("/files/content"),
            params={"path": path},
            content=body,
            headers={"content-type": "application/octet-stream"},
        )

    def _op_list_files(self, path: str) -> Op[List[Dict[str, Any]]]:
        doc = yield from self._client.op_json("GET", self._url("/files/list"), params={"path": path})
        listing = as_object(doc, "directory listing")
        return [as_object(e, "entry") for e in field(listing, "entries", list, "directory listing")]

    def _op_attach(self, mount: Mount) -> Op[Attachment]:
        doc = yield from self._client.op_json(
            "POST", self._url("/attachments"), json=_mount_body(mount), idempotent=False
        )
        return Attachment._from_json(doc)

    def _op_detach(self, mount_path: str) -> Op[Attachment]:
        doc = yield from self._client.op_json(
            "DELETE", self._url("/attachments"), params={"mount_path": mount_path}
        )
        return Attachment._from_json(doc)

    def _op_attachments(self) -> Op[List[Attachment]]:
        doc = as_object((yield from self._client.op_json("GET", self._url("/attachments"))), "attachments")
        return [Attachment._from_json(a) for a in field(doc, "attachments", list, "attachments")]


class SandboxFiles:
    """Files as the sandbox sees them (its own filesystem and its mounted volumes)."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sb = sandbox

    def read_bytes(self, path: str) -> bytes:
        """The whole file at ``path`` (absolute, inside the sandbox)."""
        return self._sb._client.run(self._sb._op_read_file(path))

    def read(self, path: str) -> str:
        """The whole file at ``path`` decoded as UTF-8."""
        return self._sb._client.run(self._sb._op_read_text(path))

    def write(self, path: str, data: Union[str, bytes]) -> None:
        """Writes ``data`` to ``path`` inside the sandbox (replacing it)."""
        self._sb._client.run(self._sb._op_write_file(path, data))

    def list(self, path: str = "/") -> List[Dict[str, Any]]:
        """Entries of a directory: ``{"name", "kind", "size"}`` dicts."""
        return self._sb._client.run(self._sb._op_list_files(path))


class SandboxVolumes:
    """The volumes attached to a sandbox."""

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sb = sandbox

    def attach(self, mount: Mount) -> Attachment:
        """Mounts a volume into the running sandbox."""
        return self._sb._client.run(self._sb._op_attach(mount))

    def detach(self, mount_path: str) -> Attachment:
        """Releases the volume mounted at ``mount_path``; its data stays in the volume."""
        return self._sb._client.run(self._sb._op_detach(mount_path))

    def list(self) -> List[Attachment]:
        """Every attachment record of the sandbox."""
        return self._sb._client.run(self._sb._op_attachments())


class Sandbox(SandboxCore[Client]):
    """A sandbox of the current tenant. As a context manager, it is destroyed on exit."""

    def __init__(self, id: str, *, client: Optional[Client] = None) -> None:
        """Wraps an existing sandbox id; prefer :meth:`connect`, which checks it exists."""
        super().__init__(id, resolve_client(client))
        self.files = SandboxFiles(self)
        self.volumes = SandboxVolumes(self)

    @classmethod
    def create(
        cls,
        template: str = "base",
        volumes: Optional[Sequence[Mount]] = None,
        name: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[int] = None,
        cpu: Optional[float] = None,
        memory: Optional[Union[int, str]] = None,
        disk: Optional[Union[int, str]] = None,
        runtime: Optional[str] = None,
        *,
        client: Optional[Client] = None,
    ) -> "Sandbox":
        """Creates and starts a sandbox with ``volumes`` mounted (``volume.mount(...)``).

        ``timeout`` (seconds) limits its lifetime: it is destroyed that long after creation
        (attachments released, volumes kept), even across server restarts. ``cpu`` is a number
        of cores (fractions allowed), ``memory`` and ``disk`` are byte counts or sizes such as
        ``"512MiB"``; ``None`` takes the server's defaults. A value the server refuses raises
        :class:`InvalidArgumentError` naming it; a tenant at a limit raises
        :class:`ResourceExhaustedError` naming the limit. ``runtime`` is ``"namespace"`` or
        ``"gvisor"`` (hibernate keeps memory and processes; ``None``: the server's
        ``--sandbox-runtime``); a server that cannot run it raises :class:`UnavailableError`.
        """
        c = resolve_client(client)
        op = op_create_sandbox(c, template, volumes, name, env, timeout, cpu, memory, disk, runtime)
        return cls(c.run(op), client=c)

    @classmethod
    def connect(cls, id: str, *, client: Optional[Client] = None) -> "Sandbox":
        """An existing sandbox by id. Raises :class:`NotFoundError` when there is none."""
        sb = cls(id, client=client)
        sb.info()
        return sb

    @classmethod
    def list(cls, *, client: Optional[Client] = None) -> List[SandboxInfo]:
        """This tenant's sandboxes."""
        c = resolve_client(client)
        return c.run(op_list_sandboxes(c))

    def info(self) -> SandboxInfo:
        """The sandbox's current record."""
        return self._client.run(self._op_info())

    def exec(
        self,
        cmd: Union[str, Sequence[str]],
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> ExecResult:
        """Runs ``cmd`` (an argument list, or a string run by ``sh -c``) and waits for it."""
        return self._client.run(self._op_exec(cmd, env, cwd, stdin, timeout))

    def pause(self) -> SandboxInfo:
        """Freezes the sandbox's processes; its mounts are released until resume."""
        return self._client.run(self._op_lifecycle("pause"))

    def resume(self) -> SandboxInfo:
        """Resumes a paused or hibernated sandbox, remounting its volumes."""
        return self._client.run(self._op_lifecycle("resume"))

    def hibernate(self) -> SandboxInfo:
        """Stops the sandbox's processes, keeping its filesystem."""
        return self._client.run(self._op_lifecycle("hibernate"))

    def fork(self) -> "Sandbox":
        """A new sandbox from a copy of this one's filesystem, with the same volumes."""
        return Sandbox(self._client.run(self._op_lifecycle("fork")).id, client=self._client)

    def destroy(self) -> None:
        """Destroys the sandbox; its volumes and their data stay."""
        self._client.run(self._op_destroy())

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.destroy()
