-- Issue 14: one counter, bumped in the same transaction as every change that can make a
-- server's cached principal or volume record stale (a key revoked, a volume deleted, a
-- sandbox's attachments changed). Servers keep what they resolved tagged with the counter and
-- use it only while the counter has not moved.
CREATE TABLE cache_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO cache_generation (id, n) VALUES (1, 0);
