"""API keys of the caller's tenant: create (the secret is returned once), list, revoke.

Example::

    import nullspace

    made = nullspace.keys.create(name="ci", role="read-only", expires=30 * 86400)
    print(made.key)            # the secret: shown only here
    for k in nullspace.keys.list():
        print(k.id, k.role, k.prefix, k.last_used_at)
    nullspace.keys.revoke(made.info.id)

Roles: ``admin`` (everything in the tenant, keys included; operator verbs for the ``default``
tenant), ``member`` (everything on volumes and sandboxes; member and read-only keys),
``read-only`` (reads, lists, search, watch and downloads; every change is
``PermissionDeniedError``). A revoked or expired key is ``UnauthenticatedError`` everywhere.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime
from typing import Any, Dict, List, Optional
from urllib.parse import quote

from ._client import BaseClient, Client, Op, resolve_client
from ._util import as_object, field, opt_field, time_field

ROLES = ("admin", "member", "read-only")


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret.

    Attributes:
        id: the key's id (``key_...``), for :func:`revoke`.
        name: its name, if it was given one.
        role: ``admin``, ``member`` or ``read-only``.
        prefix: the first characters of the key, to recognise it.
        created_at, last_used_at (refreshed at most once a minute), expires_at, revoked_at.
        volume_id: for a volume token, the one volume it reaches; ``None`` for a key.
        path: for a volume token, the directory it is confined to (``/``: the whole volume).
        read_only: a volume token that only reads.
    """

    id: str
    role: str
    prefix: str
    name: Optional[str] = None
    created_at: Optional[datetime] = None
    last_used_at: Optional[datetime] = None
    expires_at: Optional[datetime] = None
    revoked_at: Optional[datetime] = None
    volume_id: Optional[str] = None
    path: Optional[str] = None
    read_only: bool = False

    @classmethod
    def _from_json(cls, doc: object) -> "KeyInfo":
        what = "key"
        d = as_object(doc, what)
        return cls(
            id=field(d, "id", str, what),
            role=field(d, "role", str, what),
            prefix=field(d, "prefix", str, what),
            name=opt_field(d, "name", str, what),
            created_at=time_field(d, "created_at", what),
            last_used_at=time_field(d, "last_used_at", what),
            expires_at=time_field(d, "expires_at", what),
            revoked_at=time_field(d, "revoked_at", what),
            volume_id=opt_field(d, "volume_id", str, what),
            path=opt_field(d, "path", str, what),
            read_only=bool(opt_field(d, "read_only", bool, what)),
        )


@dataclass(frozen=True)
class CreatedKey:
    """A new key. ``key`` is the secret, shown only in this answer; ``repr`` hides it."""

    key: str = dataclass_field(repr=False)
    info: KeyInfo = dataclass_field(default_factory=lambda: KeyInfo(id="", role="", prefix=""))

    @classmethod
    def _from_json(cls, doc: object) -> "CreatedKey":
        d = as_object(doc, "created key")
        return cls(key=field(d, "key", str, "created key"), info=KeyInfo._from_json(d.get("info")))


def op_create(
    c: BaseClient, name: Optional[str], role: str, expires: Optional[int], tenant: Optional[str]
) -> Op[CreatedKey]:
    """The operation behind :func:`create`."""
    body: Dict[str, Any] = {"role": role}
    if name is not None:
        body["name"] = name
    if expires is not None:
        body["expires_in"] = expires
    if tenant is not None:
        body["tenant"] = tenant
    return CreatedKey._from_json((yield from c.op_json("POST", "/v1/keys", json=body, idempotent=False)))


def op_list(c: BaseClient) -> Op[List[KeyInfo]]:
    """The operation behind :func:`list`."""
    doc = as_object((yield from c.op_json("GET", "/v1/keys")), "key list")
    keys: List[object] = field(doc, "keys", builtins.list, "key list")
    return [KeyInfo._from_json(k) for k in keys]


def op_revoke(c: BaseClient, id: str) -> Op[KeyInfo]:  # noqa: A002
    """The operation behind :func:`revoke`."""
    return KeyInfo._from_json((yield from c.op_json("DELETE", f"/v1/keys/{quote(id, safe='')}")))


def create(
    *,
    name: Optional[str] = None,
    role: str = "member",
    expires: Optional[int] = None,
    tenant: Optional[str] = None,
    client: Optional[Client] = None,
) -> CreatedKey:
    """Creates a key of ``role`` (a key makes keys of its own role or a lower one), living
    ``expires`` seconds (at most 10 years; ``None``: until revoked). ``tenant``: make it in
    another tenant (admin keys of the ``default`` tenant only)."""
    c = resolve_client(client)
    return c.run(op_create(c, name, role, expires, tenant))


def list(*, client: Optional[Client] = None) -> builtins.list[KeyInfo]:  # noqa: A001 - the SDK's verb
    """The keys of the caller's tenant, oldest first, revoked ones included."""
    c = resolve_client(client)
    return c.run(op_list(c))


def revoke(id: str, *, client: Optional[Client] = None) -> KeyInfo:  # noqa: A002
    """Revokes a key at once, on every server sharing the database (and what it made).
    Revoking twice keeps the first time."""
    c = resolve_client(client)
    return c.run(op_revoke(c, id))
