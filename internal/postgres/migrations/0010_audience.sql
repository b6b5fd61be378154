-- Campaign audiences from indexes (consent.AudienceFacts): the row of
-- each confirmed subscription in subscriber_topics carries what the
-- audience rule reads of it (its basis, the encoded facts and the
-- address's suppression hash), and evidence lists the bases the ledger
-- proves per topic and subscriber (consent.IsEvidence). A preview reads
-- these, no record and no ledger event.
ALTER TABLE subscriber_topics
	ADD COLUMN basis text COLLATE "C",
	ADD COLUMN facts bytea,
	ADD COLUMN address_hash text COLLATE "C";

CREATE TABLE evidence (
	topic      text COLLATE "C",
	subscriber text COLLATE "C",
	basis      text COLLATE "C",
	PRIMARY KEY (topic, subscriber, basis)
);
INSERT INTO evidence (topic, subscriber, basis)
	SELECT DISTINCT t, subscriber, coalesce(event->>'basis', '')
	FROM ledger, jsonb_array_elements_text(coalesce(event->'topics', '[]')) t
	WHERE type IN ('confirmed', 'imported', 'reconfirmed', 'preferences_updated');

-- The facts and hashes are computed from the records (the hash with the
-- suppression list's key) when an instance next starts: it counts the
-- counters again and writes them.
DELETE FROM counters_built;
