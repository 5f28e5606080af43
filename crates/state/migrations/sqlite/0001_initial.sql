-- Control-plane schema, SQLite flavour. Timestamps are RFC 3339 UTC text with microseconds
-- (fixed width, so they also sort correctly); byte counts are INTEGER (i64 in Rust).

CREATE TABLE tenants (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL UNIQUE,
    volume_cap_bytes INTEGER CHECK (volume_cap_bytes IS NULL OR volume_cap_bytes >= 0),
    created_at       TEXT NOT NULL
) STRICT;

-- Keys are stored as SHA-256 hashes only; `lookup_id` (a prefix of the hash) finds candidates,
-- the full hash is then compared in constant time.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lookup_id  TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    admin      INTEGER NOT NULL CHECK (admin IN (0, 1)),
    created_at TEXT NOT NULL
) STRICT;

CREATE INDEX api_keys_by_lookup_id ON api_keys (lookup_id);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE volumes (
    id         TEXT PRIMARY KEY NOT NULL,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    cap_bytes  INTEGER NOT NULL CHECK (cap_bytes >= 0),
    used_bytes INTEGER NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    file_count INTEGER NOT NULL DEFAULT 0 CHECK (file_count >= 0),
    -- JSON object of string to string.
    labels     TEXT NOT NULL DEFAULT '{}',
    state      TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'deleting')),
    UNIQUE (tenant_id, name)
) STRICT;
