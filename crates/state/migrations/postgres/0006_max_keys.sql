-- Issue 17: a bound on a tenant's credentials. `max_keys` is the most live (neither revoked
-- nor expired) keys and volume tokens a tenant may hold together; NULL means the server's
-- default (10,000).
ALTER TABLE tenants ADD COLUMN max_keys BIGINT;
