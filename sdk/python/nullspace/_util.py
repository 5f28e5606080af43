"""Argument checks and response decoding shared by the capability modules."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

from .errors import InternalError

T = TypeVar("T")

_VOLUME_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})$"
)

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool, else ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def check_int(name: str, value: object, *, minimum: int = 0) -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")
    return value


def check_volume_name(name: object) -> str:
    """Validates a volume name: 1-63 chars of ``a-z 0-9 . _ -`` starting with a letter or digit."""
    if not isinstance(name, str):
        raise TypeError(f"volume name must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError("volume name must not be empty")
    if not _VOLUME_NAME.match(name):
        raise ValueError(
            f"invalid volume name {name!r}: use 1-63 characters of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_labels(labels: object) -> Dict[str, str]:
    """Validates a label mapping of str to str."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a dict of str to str, not {type(labels).__name__}")
    out: Dict[str, str] = {}
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"labels must map str to str; got {k!r}: {v!r}")
        if not k:
            raise ValueError("label keys must not be empty")
        out[k] = v
    return out


def check_path(value: object, what: str = "path") -> str:
    """Validates an absolute path inside a volume and returns it normalised.

    ``.`` components and repeated slashes are dropped; ``..``, NUL, relative paths and
    over-long paths are refused with ``ValueError``.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty; volume paths are absolute, like '/data/a.txt'")
    if not value.startswith("/"):
        raise ValueError(f"{what} {value!r} is relative; volume paths are absolute, like '/{value}'")
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL character")
    parts = []
    for part in value.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ValueError(f"{what} {value!r} contains '..'; paths cannot leave their directory")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise ValueError(f"{what} {value!r} has a component longer than {MAX_COMPONENT_BYTES} bytes")
        parts.append(part)
    norm = "/" + "/".join(parts)
    if len(norm.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise ValueError(f"{what} is longer than {MAX_PATH_BYTES} bytes")
    return norm


def parse_datetime(value: str) -> datetime:
    """Parses an RFC 3339 timestamp (nanoseconds allowed) into an aware ``datetime``."""
    m = _RFC3339.match(value)
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if tz in ("Z", "z"):
        tzinfo = timezone.utc
    else:
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        tzinfo = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tzinfo)


def malformed(what: str, doc: object) -> InternalError:
    """The error for a response the SDK cannot decode."""
    text = repr(doc)
    if len(text) > 200:
        text = text[:200] + "..."
    return InternalError(f"unexpected answer from the server ({what}): {text}")


def field(doc: Mapping[str, Any], key: str, typ: Type[T], what: str) -> T:
    """``doc[key]`` checked to be a ``typ``; an ``InternalError`` otherwise."""
    v = doc.get(key)
    if typ is int and isinstance(v, bool):
        raise malformed(f"{what}: {key!r} is not an integer", doc)
    if not isinstance(v, typ):
        raise malformed(f"{what}: {key!r} missing or not {typ.__name__}", doc)
    return v


def opt_field(doc: Mapping[str, Any], key: str, typ: Type[T], what: str) -> Optional[T]:
    """``doc[key]`` if present (and a ``typ``), else ``None``."""
    if doc.get(key) is None:
        return None
    return field(doc, key, typ, what)


def time_field(doc: Mapping[str, Any], key: str, what: str) -> Optional[datetime]:
    """``doc[key]`` parsed as an RFC 3339 timestamp, or ``None`` if absent."""
    s = opt_field(doc, key, str, what)
    if s is None:
        return None
    try:
        return parse_datetime(s)
    except ValueError:
        raise malformed(f"{what}: {key!r} is not a timestamp", doc) from None


def as_object(doc: object, what: str) -> Dict[str, Any]:
    """``doc`` if it is a JSON object, else an ``InternalError``."""
    if not isinstance(doc, dict):
        raise malformed(f"{what}: expected a JSON object", doc)
    return doc


_C = TypeVar("_C", bound="Closing")


class Closing:
    """Context-manager and finaliser plumbing for objects that hold a connection open:
    ``with`` closes them, and so does garbage collection. Subclasses define :meth:`close`."""

    _closed: bool = False

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._closed

    def close(self) -> None:
        """Closes (idempotent)."""
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class ResponseStream(Closing):
    """A :class:`Closing` over one open streaming ``httpx`` response (``self._response``)."""

    _response: Any

    def close(self) -> None:
        """Closes the underlying response (idempotent); iteration then stops."""
        if not self._closed:
            self._closed = True
            self._response.close()
