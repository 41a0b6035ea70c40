-- Message ids are each tenant's own (their streams are message-<tenant>:<uuid>): two tenants
-- may hold the same id, so the read models key messages by (message id, tenant). The message
-- id comes first: projectors and queries look rows up by it, with the tenant beside it.

ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY (message_id, tenant_id);

-- A campaign's tenant is its messages' tenant.
ALTER TABLE campaign_messages ADD COLUMN tenant_id text;
UPDATE campaign_messages m SET tenant_id = c.tenant_id
FROM campaign_metrics c WHERE c.campaign_id = m.campaign_id;
UPDATE campaign_messages m SET tenant_id = c.tenant_id
FROM campaigns c WHERE c.campaign_id = m.campaign_id AND m.tenant_id IS NULL;
ALTER TABLE campaign_messages ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE campaign_messages DROP CONSTRAINT campaign_messages_pkey;
ALTER TABLE campaign_messages
    ADD CONSTRAINT campaign_messages_pkey PRIMARY KEY (message_id, tenant_id);

ALTER TABLE analytics_campaign_messages DROP CONSTRAINT analytics_campaign_messages_pkey;
ALTER TABLE analytics_campaign_messages
    ADD CONSTRAINT analytics_campaign_messages_pkey PRIMARY KEY (message_id, tenant_id);

-- Campaigns the campaign worker could not move on after all its attempts, with the last
-- reason: what `crm campaigns status` shows. Written by the worker only; a chunk queued
-- clears its campaign's row.
CREATE TABLE campaign_stalls (
    campaign_id       bigint      PRIMARY KEY,
    tenant_id         text        NOT NULL,
    reason            text        NOT NULL,
    rounds            integer     NOT NULL DEFAULT 1,
    first_stalled_at  timestamptz NOT NULL DEFAULT now(),
    last_stalled_at   timestamptz NOT NULL DEFAULT now()
);
