-- Webhooks and the messages owed to them. A webhook is one JSON document (its secret
-- included; the database is the deployment's secret store already) with the columns the
-- senders query beside it. Servers take turns by lease: the one whose lease on a webhook
-- is current sends its messages, one at a time.
CREATE TABLE altair_webhooks (
    id bigserial PRIMARY KEY,
    hook text NOT NULL,
    enabled boolean NOT NULL,
    lease_owner text,
    lease_until timestamptz
);
-- Pending messages only: a delivered or failed one is dropped (the webhook's cursor says
-- it was made, so it is never made again).
CREATE TABLE altair_webhook_messages (
    id text PRIMARY KEY,
    webhook_id bigint NOT NULL REFERENCES altair_webhooks ON DELETE CASCADE,
    seq bigint NOT NULL,
    created_ms bigint NOT NULL,
    next_at_ms bigint NOT NULL,
    message text NOT NULL
);
CREATE INDEX altair_webhook_messages_due ON altair_webhook_messages (webhook_id, next_at_ms);
CREATE TABLE altair_webhook_attempts (
    n bigserial PRIMARY KEY,
    webhook_id bigint NOT NULL REFERENCES altair_webhooks ON DELETE CASCADE,
    attempt text NOT NULL
);
CREATE INDEX altair_webhook_attempts_by_hook ON altair_webhook_attempts (webhook_id, n);
