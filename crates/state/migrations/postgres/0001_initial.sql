-- Control-plane schema, PostgreSQL flavour: the same tables, columns and constraints as the
-- SQLite one. Plain SQL only (no extension, nothing a non-superuser cannot do), so it runs on a
-- hosted database such as Supabase.
--
-- Text columns that are sorted or compared use COLLATE "C": bytewise order, as SQLite's, so
-- `list` sorts the same on both engines whatever the database's locale.
-- Timestamps are TIMESTAMPTZ (microseconds, the precision both engines keep); byte counts are
-- BIGINT (i64 in Rust); labels are a JSONB object of string to string.

CREATE TABLE tenants (
    id               TEXT COLLATE "C" PRIMARY KEY,
    name             TEXT COLLATE "C" NOT NULL UNIQUE,
    volume_cap_bytes BIGINT CHECK (volume_cap_bytes IS NULL OR volume_cap_bytes >= 0),
    created_at       TIMESTAMPTZ NOT NULL
);

-- Keys are stored as SHA-256 hashes only; `lookup_id` (a prefix of the hash) finds candidates,
-- the full hash is then compared in constant time.
CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lookup_id  TEXT COLLATE "C" NOT NULL,
    key_hash   TEXT COLLATE "C" NOT NULL UNIQUE,
    admin      BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX api_keys_by_lookup_id ON api_keys (lookup_id);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);

CREATE TABLE volumes (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE RESTRICT,
    name       TEXT COLLATE "C" NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    cap_bytes  BIGINT NOT NULL CHECK (cap_bytes >= 0),
    used_bytes BIGINT NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    file_count BIGINT NOT NULL DEFAULT 0 CHECK (file_count >= 0),
    labels     JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    state      TEXT NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'deleting')),
    UNIQUE (tenant_id, name)
);
