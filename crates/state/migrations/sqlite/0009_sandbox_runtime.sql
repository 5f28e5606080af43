-- Issue 13: a sandbox's runtime, `namespace` (Linux namespaces) or `gvisor` (runsc).
-- Rows from before runtimes existed ran on namespaces.
ALTER TABLE sandboxes ADD COLUMN runtime TEXT NOT NULL DEFAULT 'namespace';
