-- Fewer bytes per subscriber (docs/performance.md, "Migration 0015").
--
-- The ledger's tree column no longer holds the hashes of levels 0 and 1,
-- as the bbolt store does not: a leaf hash is the hash of its event, a
-- level-1 hash that of two leaves, both computed when a proof needs them
-- (internal/postgres/tree.go). An event's column keeps the hashes of
-- levels 2 and up, empty for three events in four: 32 bytes an event on
-- average instead of 64. An event whose hashes are not stored yet
-- (NULL) stays so.
UPDATE ledger SET tree = substring(tree FROM 65) WHERE length(tree) > 0;

-- The address's suppression hash on a confirmed subscription is the 32
-- bytes of the HMAC instead of its 64 hex characters (the suppressions
-- table keeps the hex text; the audience query compares the two).
ALTER TABLE subscriber_topics ALTER COLUMN address_hash TYPE bytea USING decode(address_hash, 'hex');

-- From this version on a subscriber's record leaves out its id, which
-- the row's id column holds, and its address when email_key, the
-- case-folded address, is the address itself (most are); rows written
-- before keep both, the same, and take the short form when they are
-- next written.
--
-- An optin of an earlier version reads the tree column and the records
-- in their older form: it must not run on this schema (see
-- docs/operations.md, "Upgrades": stop every instance, then start the
-- new version).
