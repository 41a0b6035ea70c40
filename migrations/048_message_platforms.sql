-- Issue 20: the platform that carried each message (domain.message.Message.Queued.platform).
-- Every message recorded before it went through the OnlyFans gateway, whatever its fan's
-- platform said, so the default is what happened to them: no rebuild needed.
ALTER TABLE messages ADD COLUMN platform text NOT NULL DEFAULT 'onlyfans';
