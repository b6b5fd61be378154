-- The table subscriber_topics is folded into the subscriber's row
-- (docs/performance.md, "Migration 0021"): one heap row and one primary
-- key entry a subscription (about 165 bytes) become a few bytes of the
-- subscriber's own row.
--
-- topic_codes gives every topic a subscriber holds a small number, as
-- strings gives a shared string one, under the write lock, the highest
-- plus one (internal/postgres/topiccodes.go). It is a table of its own,
-- not a column of topics: a topic deleted from the catalog by hand keeps
-- its subscriptions readable; and not the table of strings, whose
-- numbers grow with every user agent past what a smallint holds.
CREATE TABLE topic_codes (
	code  smallint PRIMARY KEY CHECK (code BETWEEN 1 AND 8191),
	topic text COLLATE "C" NOT NULL UNIQUE
);
INSERT INTO topic_codes (code, topic)
	SELECT row_number() OVER (ORDER BY topic), topic FROM (SELECT DISTINCT topic FROM subscriber_topics) t;

-- subs holds one element a subscription: its topic's code times 4 plus
-- its status (pending 0, confirmed 1, unsubscribed 2, lapsed 3), NULL
-- for none; the GIN index finds the subscribers holding a topic in a
-- status (subs @> ARRAY[code]) or any of several (subs && ...). proven
-- holds the bases the subscriber's ledger events prove (the bits of
-- migration 0016: 1 consent, 2 soft opt-in, 4 legitimate interest), three
-- bytes a topic: its code (big-endian) and its bits, in code order; NULL
-- for none. The audience facts are not stored: they are the subscriber
-- record's (consent.FactsOf), which the audience reads; nor is the
-- address hash, which the audience computes from the address.
ALTER TABLE subscribers ADD COLUMN subs smallint[], ADD COLUMN proven bytea;
UPDATE subscribers s SET subs = m.subs, proven = m.proven
	FROM (SELECT st.subscriber,
			array_agg((c.code * 4 + CASE st.status WHEN 'p' THEN 0 WHEN 'c' THEN 1 WHEN 'u' THEN 2 ELSE 3 END)::smallint ORDER BY c.code) AS subs,
			string_agg(int2send(c.code) || substring(int2send(st.proven) FROM 2 FOR 1), ''::bytea ORDER BY c.code)
				FILTER (WHERE coalesce(st.proven, 0) <> 0) AS proven
		FROM subscriber_topics st JOIN topic_codes c ON c.topic = st.topic GROUP BY st.subscriber) m
	WHERE s.id = m.subscriber;
DROP TABLE subscriber_topics;
CREATE INDEX subscribers_subs ON subscribers USING gin (subs);
-- The planner's statistics of subs (its elements' frequencies), which
-- choose between the primary key and the GIN index for each topic
-- (internal/postgres/admin.go, subscriberChunk), now rather than at
-- autovacuum's next analyze.
ANALYZE subscribers;

-- An optin of an earlier version writes and reads subscriber_topics: it
-- must not run on this schema (docs/operations.md, "Upgrades": stop
-- every instance, then start the new version).
