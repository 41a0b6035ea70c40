-- Issue 16: a workspace's scripts, usable from every one of its accounts (domain/script.py,
-- ``shared``), are written on the account that founded it and listed beside each account's.
ALTER TABLE scripts ADD COLUMN shared boolean NOT NULL DEFAULT false;
