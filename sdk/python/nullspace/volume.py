"""Volumes: durable shared filesystems, created once by name and used from anywhere."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ._client import BaseClient, Client, Op, resolve_client
from ._util import (
    as_object,
    check_bool,
    check_labels,
    check_volume_name,
    field,
    opt_field,
    time_field,
)
from .errors import NotFoundError
from .files import VolumeFiles

if TYPE_CHECKING:
    from .keys import CreatedKey

__all__ = ["Volume", "VolumeInfo", "PendingUpload", "Mount", "VOLUME_FIELDS"]

C = TypeVar("C", bound=BaseClient)

#: Every field of a volume, in display order; ``fields=[...]`` selects among these.
VOLUME_FIELDS: Tuple[str, ...] = (
    "id",
    "name",
    "created_at",
    "updated_at",
    "cap_bytes",
    "used_bytes",
    "file_count",
    "labels",
    "state",
    "attachments",
    "pending_upload_bytes",
)

_FORBIDDEN_MOUNT_ROOTS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class VolumeInfo:
    """A snapshot of a volume's fields, as returned by :meth:`Volume.info` and :meth:`Volume.list`.

    Fields that were not selected (``fields=[...]``) are ``None``.

    Attributes:
        id: the volume's unique id (``vol_...``).
        name: the volume's name, unique per tenant.
        created_at: when the volume was created (UTC).
        updated_at: when the volume record last changed (UTC).
        cap_bytes: the most bytes of file content the volume may hold.
        used_bytes: bytes of regular-file content it holds now.
        file_count: number of regular files it holds now.
        labels: its ``key: value`` labels.
        state: its state (``"ready"``).
        attachments: number of live sandbox attachments.
        pending_upload_bytes: bytes reserved against the cap by resumable uploads not yet
            complete (see :meth:`Volume.uploads`; cancel one with :meth:`Volume.cancel_upload`).
    """

    id: Optional[str] = None
    name: Optional[str] = None
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None
    cap_bytes: Optional[int] = None
    used_bytes: Optional[int] = None
    file_count: Optional[int] = None
    labels: Optional[Dict[str, str]] = None
    state: Optional[str] = None
    attachments: Optional[int] = None
    pending_upload_bytes: Optional[int] = None

    @classmethod
    def _from_json(cls, doc: object) -> "VolumeInfo":
        what = "volume"
        d = as_object(doc, what)
        labels = opt_field(d, "labels", dict, what)
        if labels is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            labels = {str(k): str(v) for k, v in labels.items()}
        return cls(
            id=opt_field(d, "id", str, what),
            name=opt_field(d, "name", str, what),
            created_at=time_field(d, "created_at", what),
            updated_at=time_field(d, "updated_at", what),
            cap_bytes=opt_field(d, "cap_bytes", int, what),
            used_bytes=opt_field(d, "used_bytes", int, what),
            file_count=opt_field(d, "file_count", int, what),
            labels=labels,
            state=opt_field(d, "state", str, what),
            attachments=opt_field(d, "attachments", int, what),
            pending_upload_bytes=opt_field(d, "pending_upload_bytes", int, what),
        )


@dataclass(frozen=True)
class PendingUpload:
    """A resumable upload still waiting for bytes, as listed by :meth:`Volume.uploads`.

    Its declared ``length`` is reserved against the volume's cap until it completes, is
    cancelled (:meth:`Volume.cancel_upload`) or expires (at most 24 hours after it was created).

    Attributes:
        id: the upload's id.
        path: where the file lands in the volume.
        offset: bytes stored durably so far.
        length: its declared length (what is reserved).
        created_at, expires_at: when it was created and when it expires (UTC).
    """

    id: str
    path: str
    offset: int
    length: int
    created_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None

    @classmethod
    def _from_json(cls, doc: object) -> "PendingUpload":
        what = "upload"
        d = as_object(doc, what)
        return cls(
            id=field(d, "id", str, what),
            path=field(d, "path", str, what),
            offset=field(d, "offset", int, what),
            length=field(d, "length", int, what),
            created_at=time_field(d, "created_at", what),
            expires_at=time_field(d, "expires_at", what),
        )


@dataclass(frozen=True)
class Mount:
    """A request to mount a volume into a sandbox at ``path``; made by :meth:`Volume.mount`.

    Attributes:
        volume: the volume's name.
        path: absolute, normalised mount path inside the sandbox.
        read_only: mount read-only (writers get ``EROFS``).
        subpath: a directory inside the volume to expose instead of its root (relative,
            normalised, e.g. ``"projects/a"``), or ``None`` for the whole volume.
        volume_id: the volume's id, when known.
    """

    volume: str
    path: str
    read_only: bool = False
    subpath: Optional[str] = None
    volume_id: Optional[str] = None

    def to_spec(self) -> str:
        """The CLI form: ``ref=VOLUME,mount=/abs/path[,readonly][,subpath=dir]``."""
        spec = f"ref={self.volume},mount={self.path}"
        if self.read_only:
            spec += ",readonly"
        if self.subpath is not None:
            spec += f",subpath={self.subpath}"
        return spec


def check_fields(fields: object) -> Optional[List[str]]:
    """Validates a ``fields=[...]`` selection against :data:`VOLUME_FIELDS`."""
    if fields is None:
        return None
    if isinstance(fields, (str, bytes)):
        raise TypeError(
            "fields must be a list of field names such as ['name', 'used_bytes'], not a single string"
        )
    try:
        items = list(fields)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"fields must be a list of str, not {type(fields).__name__}") from None
    out: List[str] = []
    for f in items:
        if not isinstance(f, str):
            raise TypeError(f"fields must be a list of str; got {f!r}")
        if f not in VOLUME_FIELDS:
            raise ValueError(f"unknown volume field {f!r}; valid fields: {', '.join(VOLUME_FIELDS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise ValueError("fields must name at least one field (or be None for all)")
    return out


def check_mount_path(path: object) -> str:
    """Validates a mount path: absolute, no ``..``, not ``/``, not under /proc, /sys or /dev."""
    if not isinstance(path, str):
        raise TypeError(f"mount path must be a str, not {type(path).__name__}")
    if not path.startswith("/"):
        raise ValueError(f"mount path {path!r} must be absolute, like '/workspace/data'")
    if "\x00" in path:
        raise ValueError(f"mount path {path!r} contains a NUL character")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"mount path {path!r} must not contain '..'")
    norm = "/" + "/".join(parts)
    if norm == "/":
        raise ValueError("a volume cannot be mounted at '/'")
    for root in _FORBIDDEN_MOUNT_ROOTS:
        if norm == root or norm.startswith(root + "/"):
            raise ValueError(f"mount path {norm!r} is under {root}, which is reserved")
    return norm


def check_subpath(subpath: object) -> Optional[str]:
    """Validates a mount subpath: a directory inside the volume, returned relative and normalised."""
    if subpath is None:
        return None
    if not isinstance(subpath, str):
        raise TypeError(f"subpath must be a str, not {type(subpath).__name__}")
    if "\x00" in subpath:
        raise ValueError(f"subpath {subpath!r} contains a NUL character")
    parts = [p for p in subpath.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"subpath {subpath!r} must not contain '..'")
    if not parts:
        raise ValueError(f"subpath {subpath!r} names the volume root; leave subpath=None instead")
    return posixpath.join(*parts)


def op_volume_doc(c: BaseClient, name: str, create_if_missing: bool) -> Op[Any]:
    """The record of volume ``name`` (created when ``create_if_missing``)."""
    check_volume_name(name)
    check_bool("create_if_missing", create_if_missing)
    if create_if_missing:
        body = {"name": name, "labels": {}, "if_not_exists": True}
        return (yield from c.op_json("POST", "/v1/volumes", json=body))
    return (yield from c.op_json("GET", f"/v1/volumes/{name}", params={"fields": "id,name"}))


def op_create_volume(c: BaseClient, name: str, labels: Optional[Mapping[str, str]]) -> Op[Any]:
    """Creates volume ``name``; the result is its record."""
    check_volume_name(name)
    lab = check_labels(labels)
    body = {"name": name, "labels": lab, "if_not_exists": False}
    return (yield from c.op_json("POST", "/v1/volumes", json=body))


def op_list_volumes(
    c: BaseClient, labels: Optional[Mapping[str, str]], fields: Optional[Sequence[str]]
) -> Op[List[VolumeInfo]]:
    """This tenant's volumes (see ``Volume.list``)."""
    lab = check_labels(labels)
    flds = check_fields(fields)
    params: List[Tuple[str, Any]] = [("label", f"{k}={v}") for k, v in lab.items()]
    if flds is not None:
        params.append(("fields", ",".join(flds)))
    doc = as_object((yield from c.op_json("GET", "/v1/volumes", params=params)), "volume list")
    return [VolumeInfo._from_json(v) for v in field(doc, "volumes", list, "volume list")]


def op_delete_volume(c: BaseClient, name: str, force: bool, if_exists: bool) -> Op[None]:
    """Deletes volume ``name`` (see ``Volume.delete``)."""
    check_volume_name(name)
    check_bool("force", force)
    check_bool("if_exists", if_exists)
    yield from c.op_request("DELETE", f"/v1/volumes/{name}", params={"force": force, "if_exists": if_exists})


def volume_ref(doc: object) -> Tuple[str, str]:
    """(name, id) of a volume record."""
    d = as_object(doc, "volume")
    return field(d, "name", str, "volume"), field(d, "id", str, "volume")


class VolumeCore(Generic[C]):
    """What :class:`Volume` and :class:`nullspace.aio.AsyncVolume` share: identity, mounts,
    and the per-volume operations (see ``_client``)."""

    def __init__(self, name: str, id: str, client: C) -> None:
        self._name = check_volume_name(name)
        if not isinstance(id, str):
            raise TypeError(f"id must be a str, not {type(id).__name__}")
        self._id = id
        self._client: C = client

    @property
    def name(self) -> str:
        """The volume's name."""
        return self._name

    @property
    def id(self) -> str:
        """The volume's unique id (``vol_...``); a re-created volume of the same name has a new id."""
        return self._id

    @property
    def client(self) -> C:
        """The client this volume talks through."""
        return self._client

    def _op_token(self, path: str, read_only: bool, expires: int) -> Op["CreatedKey"]:
        from .keys import CreatedKey

        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must be an absolute volume path, not {path!r}")
        check_bool("read_only", read_only)
        doc = yield from self._client.op_json(
            "POST",
            f"/v1/volumes/{self._name}/tokens",
            json={"path": path, "read_only": read_only, "expires_in": expires},
            idempotent=False,
        )
        return CreatedKey._from_json(doc)

    def _op_info(self, fields: Optional[Sequence[str]]) -> Op[VolumeInfo]:
        flds = check_fields(fields)
        params = {"fields": ",".join(flds)} if flds is not None else None
        doc = yield from self._client.op_json("GET", f"/v1/volumes/{self._name}", params=params)
        info = VolumeInfo._from_json(doc)
        if info.id is not None and info.id != self._id:
            raise NotFoundError(
                f"volume {self._name!r} ({self._id}) was deleted; a new volume now has that name ({info.id})"
            )
        return info

    def _op_rename(self, new_name: str) -> Op[None]:
        check_volume_name(new_name)
        doc = yield from self._client.op_json(
            "POST", f"/v1/volumes/{self._name}/rename", json={"new_name": new_name}, idempotent=False
        )
        self._name = VolumeInfo._from_json(doc).name or new_name

    def _op_uploads(self) -> Op[List[PendingUpload]]:
        doc = as_object((yield from self._client.op_json("GET", f"/v1/volumes/{self._name}/uploads")), "upload list")
        items = doc.get("uploads")
        if not isinstance(items, list):
            items = []
        return [PendingUpload._from_json(u) for u in items]

    def _op_cancel_upload(self, id: str) -> Op[None]:  # noqa: A002 - the upload's id
        from ._transfer import TUS_VERSION

        yield from self._client.op_request(
            "DELETE",
            f"/v1/volumes/{self._name}/uploads/{id}",
            headers={"Tus-Resumable": TUS_VERSION},
            idempotent=True,
        )

    def mount(self, path: str, read_only: bool = False, subpath: Optional[str] = None) -> Mount:
        """Describes mounting this volume at ``path`` in a sandbox (``Sandbox.create(volumes=[...])``).

        Raises:
            ValueError: ``path`` is relative, ``/``, contains ``..`` or is under /proc, /sys or
                /dev; or ``subpath`` contains ``..``.
        """
        p = check_mount_path(path)
        check_bool("read_only", read_only)
        sp = check_subpath(subpath)
        return Mount(volume=self._name, path=p, read_only=read_only, subpath=sp, volume_id=self._id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, id={self._id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VolumeCore):
            return NotImplemented
        return self._id == other._id and self._client.url == other._client.url

    def __hash__(self) -> int:
        return hash((self._id, self._client.url))


class Volume(VolumeCore[Client]):
    """A handle on one volume of the current tenant.

    Get one with :meth:`Volume.from_name` or :meth:`Volume.create`; manage its files through
    :attr:`files` and mount it into sandboxes with :meth:`mount`.

    Example::

        volume = Volume.from_name("team-data", create_if_missing=True)
        volume.files.write("/hello.txt", "persistent\\n")
    """

    def __init__(self, name: str, id: str, *, client: Optional[Client] = None) -> None:
        """Wraps an existing volume; prefer :meth:`from_name`, which checks it exists."""
        super().__init__(name, id, resolve_client(client))
        self._files: Optional[VolumeFiles] = None

    # ------------------------------------------------------------------ class-level operations

    @classmethod
    def from_name(
        cls, name: str, create_if_missing: bool = False, *, client: Optional[Client] = None
    ) -> "Volume":
        """Looks up a volume by name (creating it when ``create_if_missing`` is true).

        Raises:
            NotFoundError: the volume does not exist and ``create_if_missing`` is false.
        """
        c = resolve_client(client)
        return cls(*volume_ref(c.run(op_volume_doc(c, name, create_if_missing))), client=c)

    @classmethod
    def create(
        cls,
        name: str,
        labels: Optional[Mapping[str, str]] = None,
        *,
        client: Optional[Client] = None,
    ) -> "Volume":
        """Creates a new volume.

        Raises:
            AlreadyExistsError: this tenant already has a volume with that name.
        """
        c = resolve_client(client)
        return cls(*volume_ref(c.run(op_create_volume(c, name, labels))), client=c)

    @classmethod
    def list(
        cls,
        labels: Optional[Mapping[str, str]] = None,
        fields: Optional[Sequence[str]] = None,
        *,
        client: Optional[Client] = None,
    ) -> List[VolumeInfo]:
        """Lists this tenant's volumes, optionally only those carrying all of ``labels``.

        ``fields`` selects which fields are fetched; the others are ``None`` in the results.
        """
        c = resolve_client(client)
        return c.run(op_list_volumes(c, labels, fields))

    @classmethod
    def delete(
        cls,
        name: str,
        force: bool = False,
        *,
        if_exists: bool = False,
        client: Optional[Client] = None,
    ) -> None:
        """Deletes a volume and all its files.

        Args:
            force: release live sandbox attachments first instead of failing.
            if_exists: succeed when there is no such volume.

        Raises:
            NotFoundError: no such volume (unless ``if_exists``).
            VolumeInUseError: a live sandbox has it attached (unless ``force``).
        """
        c = resolve_client(client)
        c.run(op_delete_volume(c, name, force, if_exists))

    # ------------------------------------------------------------------ instance

    @property
    def files(self) -> VolumeFiles:
        """The direct file API of this volume (no sandbox needed)."""
        if self._files is None:
            self._files = VolumeFiles(self)
        return self._files

    def token(self, path: str = "/", read_only: bool = False, expires: int = 3600) -> "CreatedKey":
        """Makes a bearer token that reaches only this volume's files (file routes, uploads,
        watch, archives, signed-URL creation), read-only if asked, for ``expires`` seconds (at
        most 7 days); revoked with ``nullspace.keys.revoke(token.info.id)`` or with the key that
        made it. Use it as ``Volume(name, token.info.volume_id, client=Client(url, token.key))``.

        With ``path="/dir"`` (an existing directory) the token reaches only ``/dir`` and below:
        it names paths as the volume does (``/dir/x``), and any path outside, ``/`` included, is
        :class:`NotFoundError`, like a missing file. If the directory is later removed or
        moved away, the token reaches nothing (a new directory of that name is reached again).
        """
        return self._client.run(self._op_token(path, read_only, expires))

    def info(self, fields: Optional[Sequence[str]] = None) -> VolumeInfo:
        """Fetches fresh fields of this volume from the server (unselected fields are ``None``).

        Raises:
            NotFoundError: the volume was deleted.
        """
        return self._client.run(self._op_info(fields))

    def rename(self, new_name: str) -> None:
        """Renames this volume to ``new_name`` (its files, id, keys and tokens stay; signed URLs
        made for the old name stop working); this handle then names the new name.

        Raises:
            VolumeInUseError: a sandbox has the volume attached (detach it first).
            AlreadyExistsError: the tenant has a volume named ``new_name``.
        """
        self._client.run(self._op_rename(new_name))

    def uploads(self) -> List[PendingUpload]:
        """The volume's resumable uploads still waiting for bytes, oldest first (each reserves
        its declared length against the cap; their sum is ``info().pending_upload_bytes``)."""
        return self._client.run(self._op_uploads())

    def cancel_upload(self, id: str) -> None:  # noqa: A002 - the upload's id
        """Cancels a pending upload (tus termination): its data goes and its reserved bytes are
        free again.

        Raises:
            NotFoundError: no such upload (finished, cancelled or expired).
        """
        self._client.run(self._op_cancel_upload(id))
