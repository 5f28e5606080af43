-- Keys with a lifecycle and roles, and volume tokens (issue 17). Every existing key becomes an
-- `admin` key of its tenant (the bootstrap key and each tenant's first key were all-powerful in
-- their tenant); operator verbs stay with admin keys of the `default` tenant. Existing keys have
-- no known display prefix (only their hash is stored), so they show `nsk_`.
--
-- A volume token is a row with `volume_id` set: it acts only on that volume, below `path`,
-- read-only if `read_only`, and dies with the key that made it (`parent_id`, revoked with it).

ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('admin', 'member', 'read-only'));
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT 'nsk_';
ALTER TABLE api_keys ADD COLUMN last_used_at TIMESTAMPTZ;
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE api_keys ADD COLUMN revoked_at TIMESTAMPTZ;
ALTER TABLE api_keys ADD COLUMN parent_id TEXT COLLATE "C";
ALTER TABLE api_keys ADD COLUMN volume_id TEXT COLLATE "C";
ALTER TABLE api_keys ADD COLUMN path TEXT;
ALTER TABLE api_keys ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;

CREATE INDEX api_keys_by_parent ON api_keys (parent_id);
