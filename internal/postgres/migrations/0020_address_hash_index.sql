-- Fewer bytes per subscriber and per event (docs/performance.md,
-- "Migration 0020").
--
-- A subscriber's address is looked up by equality only: its unique
-- btree becomes an exclusion constraint on a hash index, whose entries
-- hold the address's 4-byte hash instead of the address. Addresses come
-- in random order, which leaves the btree's pages about 70% full (about
-- 72 bytes an address as it grew on the bench's data) against about 43
-- for the hash index. The address stays unique: the exclusion
-- constraint refuses a second row with an equal email_key as the unique
-- constraint did (exclusion_violation, 23P01, which the store maps to
-- EConflict as it maps unique_violation; an insert's ON CONFLICT DO
-- NOTHING still skips the row).
ALTER TABLE subscribers DROP CONSTRAINT subscribers_email_key_key;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_email_key_excl EXCLUDE USING hash (email_key WITH =);

-- A subscriber's events (their history, erasure) are found by
-- subscriber = $1 and sorted by seq, a few rows: the index needs no seq
-- (8 bytes an event). Subscriber ids start with their creation time, so
-- this btree fills from the right and stays dense; a hash index here
-- measured no smaller.
DROP INDEX ledger_subscriber;
CREATE INDEX ledger_subscriber ON ledger (subscriber);

-- An event's record holds its type: the column repeated it (9-20
-- bytes). The store reads the type from the record (LedgerCounts after
-- a sequence number, the evidence of a subscriber). The column's bytes
-- in the rows written before stay until VACUUM FULL rewrites them.
ALTER TABLE ledger DROP COLUMN type;
