-- Issue 11: resource limits.
-- Each sandbox records the limits it was created with (the runtime applies them; the control
-- plane sums them per tenant). Rows from before limits existed get the server defaults of the
-- time: one core, 1 GiB memory, a 4 GiB writable layer, 1,024 processes.
ALTER TABLE sandboxes ADD COLUMN cpu_millicores BIGINT NOT NULL DEFAULT 1000;
ALTER TABLE sandboxes ADD COLUMN memory_bytes BIGINT NOT NULL DEFAULT 1073741824;
ALTER TABLE sandboxes ADD COLUMN disk_bytes BIGINT NOT NULL DEFAULT 4294967296;
ALTER TABLE sandboxes ADD COLUMN pids BIGINT NOT NULL DEFAULT 1024;

-- A tenant's own limits, set by an operator; NULL means the server's default.
ALTER TABLE tenants ADD COLUMN max_sandboxes BIGINT;
ALTER TABLE tenants ADD COLUMN max_volumes BIGINT;
ALTER TABLE tenants ADD COLUMN max_cpu_millicores BIGINT;
ALTER TABLE tenants ADD COLUMN max_sandbox_memory BIGINT;
ALTER TABLE tenants ADD COLUMN max_total_memory BIGINT;
ALTER TABLE tenants ADD COLUMN max_total_disk BIGINT;
