-- Counters and the indexes audiences and filtered listings read, kept in
-- the transactions of the writes (consent.Counts). Every write holds the
-- one write lock, so a single row per counter adds no contention.
CREATE TABLE counters (
	name text COLLATE "C" PRIMARY KEY,
	n    bigint NOT NULL
);

-- Set once the counters have been counted from the records: optin does
-- that at its first start on this schema (and optin counters rebuild).
CREATE TABLE counters_built (
	one   boolean PRIMARY KEY DEFAULT true CHECK (one),
	built timestamptz NOT NULL
);

-- Who holds which topic in which status, in subscriber id order.
CREATE TABLE subscriber_topics (
	topic      text COLLATE "C",
	status     text COLLATE "C",
	subscriber text COLLATE "C",
	PRIMARY KEY (topic, status, subscriber)
);
-- A filter on a status alone or on a topic alone reads these.
CREATE INDEX subscriber_topics_status ON subscriber_topics (status, subscriber);
CREATE INDEX subscriber_topics_topic ON subscriber_topics (topic, subscriber);
INSERT INTO subscriber_topics (topic, status, subscriber)
	SELECT s.key, s.value->>'status', id FROM subscribers, jsonb_each(data->'subscriptions') s;

-- A customer's last purchase, for the lifecycle stages.
ALTER TABLE subscribers ADD COLUMN last_purchase timestamptz;
UPDATE subscribers SET last_purchase = (data->>'last_purchase')::timestamptz WHERE data ? 'last_purchase';
CREATE INDEX subscribers_last_purchase ON subscribers (last_purchase) WHERE last_purchase IS NOT NULL;
CREATE INDEX subscribers_customers ON subscribers (id) INCLUDE (last_purchase) WHERE last_purchase IS NOT NULL;
