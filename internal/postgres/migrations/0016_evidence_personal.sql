-- The evidence table is folded into subscriber_topics (docs/performance.md,
-- "Migration 0016"): each row of a subscription, whatever its status,
-- carries in proven the bases the subscriber's ledger events prove for
-- its topic (consent.IsEvidence), one bit each: 1 consent, 2 soft opt-in,
-- 4 legitimate interest; NULL for none. Other bases qualify for nothing
-- (consent.Eligibility; the audience facts keep them as no basis) and get
-- no bit. A campaign's audience reads the bit of the basis its facts hold,
-- so the row's basis column, which only the join with evidence read, goes
-- too.
--
-- The bits are kept as the bbolt store keeps its evidence flag, whichever
-- comes first (internal/postgres/audience.go): an event that proves a
-- basis sets them on the subscriber's rows of its topics; a row written
-- later gets those of the events of its transaction, and a topic new to
-- an existing subscriber those its events prove, read from the ledger; a
-- status change keeps them; optin counters rebuild sets them again from
-- every event.
ALTER TABLE subscriber_topics ADD COLUMN proven smallint;
UPDATE subscriber_topics st SET proven = e.bits
	FROM (SELECT topic, subscriber, bit_or(CASE basis WHEN 'consent' THEN 1 WHEN 'soft_opt_in' THEN 2 ELSE 4 END)::smallint AS bits
		FROM evidence WHERE basis IN ('consent', 'soft_opt_in', 'legitimate_interest') GROUP BY topic, subscriber) e
	WHERE st.topic = e.topic AND st.subscriber = e.subscriber;
ALTER TABLE subscriber_topics DROP COLUMN basis;
-- Evidence of a topic its subscriber holds in no status any more has no
-- row to go to: should the topic come back, the row then written reads
-- it from the ledger.
DROP TABLE evidence;

-- A subscription's status is a "char", the first byte of its name
-- (pending p, confirmed c, unsubscribed u, lapsed l; the cast takes that
-- byte): one byte in the row and the primary key instead of 7 to 12.
-- Statements pass the code as a "char" (internal/postgres/audience.go,
-- statusCode); a read gives the code, not the name. This rewrites the
-- table and its indexes, which also drops the basis column's bytes.
ALTER TABLE subscriber_topics ALTER COLUMN status TYPE "char" USING status::"char";

-- From this version on a ledger event's personal record leaves out its
-- address when its subscriber holds that address as email_key, as the
-- bbolt store's do: it starts with 0xC3 (record.RefMagic) and readers
-- take the address from the subscriber; before the key changes, the
-- records get it back (internal/postgres/write.go, encodePersonal). The
-- event's personal digest is of the whole record, as before. Records
-- written before keep their address, so nothing is rewritten for that.
--
-- An optin of an earlier version writes evidence rows, reads the basis
-- column and would read the short personal records without their
-- address: it must not run on this schema (see docs/operations.md,
-- "Upgrades": stop every instance, then start the new version).
