-- Issue 11: resource limits.
-- Each sandbox records the limits it was created with (the runtime applies them; the control
-- plane sums them per tenant). Rows from before limits existed get the server defaults of the
-- time: one core, 1 GiB memory, a 4 GiB writable layer, 1,024 processes.
ALTER TABLE sandboxes ADD COLUMN cpu_millicores INTEGER NOT NULL DEFAULT 1000;
ALTER TABLE sandboxes ADD COLUMN memory_bytes INTEGER NOT NULL DEFAULT 1073741824;
ALTER TABLE sandboxes ADD COLUMN disk_bytes INTEGER NOT NULL DEFAULT 4294967296;
ALTER TABLE sandboxes ADD COLUMN pids INTEGER NOT NULL DEFAULT 1024;

-- A tenant's own limits, set by an operator; NULL means the server's default.
ALTER TABLE tenants ADD COLUMN max_sandboxes INTEGER;
ALTER TABLE tenants ADD COLUMN max_volumes INTEGER;
ALTER TABLE tenants ADD COLUMN max_cpu_millicores INTEGER;
ALTER TABLE tenants ADD COLUMN max_sandbox_memory INTEGER;
ALTER TABLE tenants ADD COLUMN max_total_memory INTEGER;
ALTER TABLE tenants ADD COLUMN max_total_disk INTEGER;
