"""Where the SDK finds the server URL and API key.

Order (first one that gives a value wins):

1. explicit arguments (``nullspace.Client(url=..., key=...)`` or ``nullspace.configure(...)``);
2. the environment: ``NULLSPACE_API_URL`` and ``NULLSPACE_API_KEY``;
3. the CLI profile written by ``nullspace login``:
   ``$XDG_CONFIG_HOME/nullspace/config.json`` (default ``~/.config/nullspace/config.json``);
4. the server's bootstrap file on this machine: ``client.json`` in ``$NULLSPACE_DATA_DIR``,
   else ``$XDG_DATA_HOME/nullspace``, else ``~/.local/share/nullspace``;
5. the default URL ``http://127.0.0.1:7420`` (with no key).

The two files hold ``{"url": "...", "key": "..."}``. A file is used as a unit: its key is only
taken when its URL is the URL already chosen (or when no URL was chosen yet, in which case its
URL is taken too), so a key is never sent to a server it was not saved for; a file without a
URL is skipped. A damaged profile is an ``InvalidArgumentError``; a damaged or unreadable
``client.json`` is skipped. Relative ``XDG_*`` and ``NULLSPACE_DATA_DIR`` values are ignored.
This is the same resolution as the CLI's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Tuple

from .errors import InvalidArgumentError

DEFAULT_URL = "http://127.0.0.1:7420"
ENV_URL = "NULLSPACE_API_URL"
ENV_KEY = "NULLSPACE_API_KEY"


@dataclass(frozen=True)
class ResolvedConfig:
    """The outcome of configuration resolution: URL, key and where each came from."""

    url: str
    key: Optional[str]
    url_source: str
    key_source: Optional[str]

    def __repr__(self) -> str:
        key = None if self.key is None else "<redacted>"
        return (
            f"ResolvedConfig(url={self.url!r}, key={key}, url_source={self.url_source!r}, "
            f"key_source={self.key_source!r})"
        )


def _env_dir(env: Mapping[str, str], var: str) -> Optional[Path]:
    """An absolute directory from ``var`` (empty or relative values are ignored, as in XDG)."""
    v = env.get(var) or ""
    return Path(v) if v and os.path.isabs(v) else None


def _home(env: Mapping[str, str]) -> Optional[Path]:
    h = _env_dir(env, "HOME")
    if h is not None:
        return h
    try:
        return Path.home()
    except RuntimeError:
        return None


def profile_path(env: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """Path of the CLI profile written by ``nullspace login`` (``None`` without a home dir)."""
    env = os.environ if env is None else env
    base = _env_dir(env, "XDG_CONFIG_HOME")
    if base is None:
        home = _home(env)
        if home is None:
            return None
        base = home / ".config"
    return base / "nullspace" / "config.json"


def bootstrap_path(env: Optional[Mapping[str, str]] = None) -> Optional[Path]:
    """Path of the ``client.json`` the local server writes at its first start."""
    env = os.environ if env is None else env
    data_dir = _env_dir(env, "NULLSPACE_DATA_DIR")
    if data_dir is None:
        xdg = _env_dir(env, "XDG_DATA_HOME")
        if xdg is not None:
            data_dir = xdg / "nullspace"
        else:
            home = _home(env)
            if home is None:
                return None
            data_dir = home / ".local" / "share" / "nullspace"
    return data_dir / "client.json"


def _read_file(path: Path, strict: bool) -> Tuple[Optional[str], Optional[str]]:
    """Reads ``{"url", "key"}`` from a JSON file; a missing file gives nothing.

    A damaged file is an error when ``strict`` (the user's own profile), else ignored (the
    server's ``client.json`` may belong to another user).
    """
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        if strict:
            raise InvalidArgumentError(f"invalid profile {path}: {e}") from None
        return None, None
    if not isinstance(doc, dict):
        if strict:
            raise InvalidArgumentError(f"invalid profile {path}: expected a JSON object with url and key")
        return None, None
    url = doc.get("url")
    key = doc.get("key")
    return (
        url if isinstance(url, str) and url else None,
        key if isinstance(key, str) and key else None,
    )


def normalize_url(url: str) -> str:
    """Strips whitespace and trailing slashes; adds ``http://`` when no scheme is given."""
    u = url.strip().rstrip("/")
    if "://" not in u:
        u = "http://" + u
    return u


def resolve_config(
    url: Optional[str] = None,
    key: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> ResolvedConfig:
    """Resolves the server URL and API key (see the module docstring for the order)."""
    env = os.environ if env is None else env
    url_source: Optional[str] = None
    key_source: Optional[str] = None
    if url:
        url_source = "argument"
    elif env.get(ENV_URL):
        url, url_source = env[ENV_URL], f"env {ENV_URL}"
    else:
        url = None
    if key:
        key_source = "argument"
    elif env.get(ENV_KEY):
        key, key_source = env[ENV_KEY], f"env {ENV_KEY}"
    else:
        key = None

    for label, path in (("profile", profile_path(env)), ("bootstrap", bootstrap_path(env))):
        if url is not None and key is not None:
            break
        if path is None:
            continue
        f_url, f_key = _read_file(path, strict=label == "profile")
        if f_url is None:
            continue  # a key without its URL is never used
        if url is None:
            url, url_source = f_url, f"{label} {path}"
            if key is None and f_key is not None:
                key, key_source = f_key, f"{label} {path}"
        elif key is None and f_key is not None and normalize_url(f_url) == normalize_url(url):
            key, key_source = f_key, f"{label} {path}"

    if url is None:
        url, url_source = DEFAULT_URL, "default"
    assert url_source is not None
    return ResolvedConfig(normalize_url(url), key, url_source, key_source)
