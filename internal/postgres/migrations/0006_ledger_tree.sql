-- The ledger as a Merkle tree (RFC 6962): each event keeps the tree
-- hashes that tlog stores for it (tlog.StoredHashes: its leaf hash, then
-- the root of each subtree it completes, 32 bytes each), and the head
-- counts the events whose hashes are stored. Events written before this
-- version get theirs when an instance first starts on it.

ALTER TABLE ledger ADD COLUMN tree bytea CHECK (length(tree) % 32 = 0);

ALTER TABLE ledger_head ADD COLUMN tree_size bigint NOT NULL DEFAULT 0;
