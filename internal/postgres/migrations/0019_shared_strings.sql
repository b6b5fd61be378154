-- A table of shared strings, as the bbolt store keeps in its bucket
-- strings (docs/performance.md, "Migration 0019"): from this version on
-- a ledger event, its personal record and a request name the strings
-- many of them share (a form's id and source, the page, the wording's
-- hash, a browser's user agent, the domain of a Message-ID) by their
-- number n here (record.Strings), and an imported event keeps its
-- evidence text in its parts, its source shared; an event's time is its
-- offset from its subscriber's id (record.EventAtIDMagic).
--
-- Numbers are given inside the write transaction that first stores a
-- string, under the write lock every write takes (pg_advisory_xact_lock),
-- as the highest number plus one: no two instances give one number twice.
-- A number given in a transaction that rolls back is not there and may go
-- to another string later; an instance keeps in memory only the numbers
-- of committed transactions, and looks up here the ones it does not
-- know (another instance's). A string once numbered stays: records refer
-- to it. Its bytes are those of the record's string, which need not be
-- valid UTF-8 (a user agent), hence bytea. A user agent in the table
-- outlives the personal records that cite it, which erasure deletes:
-- alone it names no one.
--
-- Rows written before keep their strings written out and read as they
-- are (the decoder reads both forms): nothing is rewritten here.
--
-- An optin of an earlier version reads records with numbered strings as
-- broken: it must not run on this schema (docs/operations.md, "Upgrades":
-- stop every instance, then start the new version).
CREATE TABLE strings (
	n bigint PRIMARY KEY,
	s bytea NOT NULL UNIQUE
);
