-- Volumes have one state, `ready`: a record is created ready and removed at once on delete.
-- The `deleting` state the first schema allowed was never set, so the column goes; the API
-- still reports `state: "ready"`.

ALTER TABLE volumes DROP COLUMN state;
