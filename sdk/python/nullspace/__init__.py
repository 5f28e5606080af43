"""nullspace: the Python SDK of nullspace Volumes, durable shared filesystems for sandboxes.

Example::

    from nullspace import Volume

    volume = Volume.from_name("team-data", create_if_missing=True)
    volume.files.write("/hello.txt", "persistent\\n")
    print(volume.files.read("/hello.txt"))

The same API with ``async`` methods is :mod:`nullspace.aio` (``AsyncVolume``, ``AsyncSandbox``).

The server URL and API key come from ``nullspace.configure(...)``/``nullspace.Client(...)``,
else ``NULLSPACE_API_URL``/``NULLSPACE_API_KEY``, else the ``nullspace login`` profile, else the
local server's ``client.json``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._client import Client, configure  # noqa: E402
from ._config import DEFAULT_URL, ResolvedConfig, resolve_config  # noqa: E402
from .errors import (  # noqa: E402
    AlreadyExistsError,
    APIConnectionError,
    ConflictError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    NullspaceError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    VolumeInUseError,
)
from .content import (  # noqa: E402
    ReplacedFile,
    ReplaceResult,
    SearchMatch,
    SearchResults,
    Watch,
    WatchEvent,
)
from .files import BatchResult, FileStat, ReadStream, VolumeFiles  # noqa: E402
from ._transfer import DownloadResult, UploadResult  # noqa: E402
from . import keys  # noqa: E402
from .keys import CreatedKey, KeyInfo  # noqa: E402
from .volume import VOLUME_FIELDS, Mount, PendingUpload, Volume, VolumeInfo  # noqa: E402
from .sandbox import (  # noqa: E402
    Attachment,
    ExecResult,
    Sandbox,
    SandboxFiles,
    SandboxInfo,
    SandboxVolumes,
)

from . import aio  # noqa: E402
from .aio import AsyncClient, AsyncSandbox, AsyncVolume  # noqa: E402

__all__ = [
    "__version__",
    "aio",
    "AsyncClient",
    "AsyncVolume",
    "AsyncSandbox",
    "Client",
    "configure",
    "resolve_config",
    "ResolvedConfig",
    "DEFAULT_URL",
    "Volume",
    "VolumeInfo",
    "PendingUpload",
    "keys",
    "KeyInfo",
    "CreatedKey",
    "VOLUME_FIELDS",
    "Mount",
    "Sandbox",
    "SandboxInfo",
    "SandboxFiles",
    "SandboxVolumes",
    "Attachment",
    "ExecResult",
    "VolumeFiles",
    "FileStat",
    "BatchResult",
    "ReadStream",
    "UploadResult",
    "DownloadResult",
    "SearchMatch",
    "SearchResults",
    "ReplacedFile",
    "ReplaceResult",
    "WatchEvent",
    "Watch",
    "NullspaceError",
    "InvalidArgumentError",
    "UnauthenticatedError",
    "PermissionDeniedError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "VolumeInUseError",
    "PayloadTooLargeError",
    "QuotaExceededError",
    "ResourceExhaustedError",
    "UnavailableError",
    "InternalError",
    "APIConnectionError",
]
