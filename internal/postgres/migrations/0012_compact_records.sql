-- The hot records, written on every signup and read by the mail worker,
-- are stored in optin's compact binary record encoding (the one bbolt
-- uses, internal/bolt/record) instead of jsonb: subscribers, requests,
-- ledger events with their personal records, and outbox jobs. Neither
-- optin nor PostgreSQL then parses JSON per signup, and a record takes
-- about half the bytes (ids, hashes and times as bytes, field names as
-- numbers). Rows written before keep their JSON, as bytes: the decoder
-- reads both (a compact record starts with 0xC1, JSON with '{'). The
-- audience facts, evidence and last_purchase that a rebuild derived from
-- the JSON in SQL are derived in Go from the decoded records.
ALTER TABLE subscribers ALTER COLUMN data TYPE bytea USING convert_to(data::text, 'UTF8');
ALTER TABLE requests ALTER COLUMN data TYPE bytea USING convert_to(data::text, 'UTF8');
ALTER TABLE ledger
	ALTER COLUMN event TYPE bytea USING convert_to(event::text, 'UTF8'),
	ALTER COLUMN personal TYPE bytea USING convert_to(personal::text, 'UTF8');
ALTER TABLE outbox ALTER COLUMN job TYPE bytea USING convert_to(job::text, 'UTF8');
ALTER TABLE outbox_parked ALTER COLUMN job TYPE bytea USING convert_to(job::text, 'UTF8');

-- subscriber_topics had three indexes, each with the subscriber's id:
-- the primary key (topic, status, subscriber), which serves a campaign's
-- audience by topic and status in subscriber order, and (topic,
-- subscriber) and (status, subscriber) for the probes of one subscriber
-- (the admin filters, the audience's other topics and its walk of every
-- subscriber). One index by subscriber serves all those probes.
DROP INDEX subscriber_topics_status;
DROP INDEX subscriber_topics_topic;
CREATE INDEX subscriber_topics_subscriber ON subscriber_topics (subscriber);
