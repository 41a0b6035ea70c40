-- Issue 18: a conversation's unread count, the fan's messages since the account's last one
-- (a message queued to the fan, one-to-one or from a campaign, answers them all), as the live
-- stream's conversation.updated counts them. The conversations projector owns the column.
ALTER TABLE conversations ADD COLUMN unread_count integer NOT NULL DEFAULT 0;

-- Conversations of an earlier release: counted once from the messages view, which the
-- messages projector keeps at about the same place in the log (`crm projections rebuild
-- conversations` counts them from the log itself).
UPDATE conversations AS c
SET unread_count = waiting.fans_messages
FROM (
    SELECT received.conversation_id, count(*) AS fans_messages
    FROM messages AS received
    WHERE received.direction = 'in'
      AND received.queued_at > coalesce(
          (SELECT max(sent.queued_at) FROM messages AS sent
           WHERE sent.conversation_id = received.conversation_id AND sent.direction = 'out'),
          '-infinity')
    GROUP BY received.conversation_id
) AS waiting
WHERE waiting.conversation_id = c.conversation_id;
