-- Sandbox records and their volume attachments, visible to every server sharing the database
-- (the same tables, columns and constraints as the SQLite flavour).
-- `server_id` names the server whose runtime runs the sandbox: only that server operates it
-- (the others answer `unavailable` naming it) and only it reconciles or expires it.
-- `state` and the attachments' states are what the owning server last saw; `expires_at` is the
-- deadline of a create-time `timeout` (NULL: none), kept here so it survives restarts.

CREATE TABLE sandboxes (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    server_id    TEXT COLLATE "C" NOT NULL,
    name         TEXT,
    template     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('running', 'paused', 'hibernated')),
    timeout_secs BIGINT CHECK (timeout_secs IS NULL OR timeout_secs > 0),
    expires_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE INDEX sandboxes_by_tenant ON sandboxes (tenant_id, created_at);
CREATE INDEX sandboxes_by_server ON sandboxes (server_id);

-- Deleting a volume record removes its attachment records (a forced delete releases the
-- mounts first), so a volume's `attachments` count is never stale.
CREATE TABLE sandbox_attachments (
    id          TEXT COLLATE "C" PRIMARY KEY,
    sandbox_id  TEXT COLLATE "C" NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    volume_id   TEXT COLLATE "C" NOT NULL REFERENCES volumes (id) ON DELETE CASCADE,
    volume_name TEXT NOT NULL,
    mount_path  TEXT COLLATE "C" NOT NULL,
    read_only   BOOLEAN NOT NULL,
    subpath     TEXT,
    state       TEXT NOT NULL CHECK (state IN ('mounted', 'released', 'failed')),
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (sandbox_id, mount_path)
);

CREATE INDEX sandbox_attachments_by_volume ON sandbox_attachments (volume_id);
