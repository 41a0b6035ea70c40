-- Issue 16: shifts move from the Workspace stream to a stream per member (domain/shift.py),
-- and a shift's id names its member: "<memberId>.<32 hex>", no longer a UUID. The view keeps
-- its rows, written only by the workspaces projector; no shift was released with UUID ids.
ALTER TABLE workspace_shifts ALTER COLUMN shift_id TYPE text;
