-- Webhook endpoints and their deliveries.

CREATE TABLE webhooks (
	id   text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);

-- Deliveries waiting, grouped by endpoint and subscriber in id (commit)
-- order. Only the first of a group has next_at set; the others wait
-- with next_at NULL until the one before them is finished or parked. A
-- delivery handed to an instance's worker is leased to it, as outbox
-- jobs are.
CREATE SEQUENCE webhook_delivery_ids;
CREATE TABLE webhook_queue (
	id          bigint PRIMARY KEY,
	webhook     text COLLATE "C" NOT NULL,
	subscriber  text COLLATE "C" NOT NULL,
	next_at     timestamptz,
	lease_owner text COLLATE "C",
	lease_until timestamptz,
	delivery    jsonb NOT NULL
);
CREATE INDEX webhook_queue_due ON webhook_queue (next_at, id) WHERE next_at IS NOT NULL;
CREATE INDEX webhook_queue_group ON webhook_queue (webhook, subscriber, id);

-- Deliveries that failed for good, kept until redelivered.
CREATE TABLE webhook_parked (
	id       bigint PRIMARY KEY,
	webhook  text COLLATE "C" NOT NULL,
	delivery jsonb NOT NULL
);
CREATE INDEX webhook_parked_webhook ON webhook_parked (webhook, id);
