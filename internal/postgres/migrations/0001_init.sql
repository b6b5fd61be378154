-- optin's first schema. Each record is the domain's JSON (data, event,
-- job) with the columns queries need beside it. Text keys sort bytewise
-- (COLLATE "C"), as listings and cursors expect whatever the database's
-- collation.

CREATE TABLE topics (
	id   text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);

CREATE TABLE forms (
	id   text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);

-- Every consent wording version shown, by the hash ledger events cite.
CREATE TABLE wordings (
	hash text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);

CREATE TABLE subscribers (
	id        text COLLATE "C" PRIMARY KEY,
	-- The case-folded address (consent.Address.Key).
	email_key text COLLATE "C" NOT NULL UNIQUE,
	data      jsonb NOT NULL
);

CREATE TABLE requests (
	id         text COLLATE "C" PRIMARY KEY,
	subscriber text COLLATE "C" NOT NULL,
	data       jsonb NOT NULL
);
CREATE INDEX requests_subscriber ON requests (subscriber);

-- The consent ledger: one hash chain in seq order. personal is the
-- event's personal record, which erasure sets to NULL; the event commits
-- to it by digest, so the chain still verifies.
CREATE TABLE ledger (
	seq        bigint PRIMARY KEY,
	subscriber text COLLATE "C" NOT NULL,
	type       text NOT NULL,
	event      jsonb NOT NULL,
	personal   jsonb
);
CREATE INDEX ledger_subscriber ON ledger (subscriber, seq);

-- The last event of the ledger; written under the write lock.
CREATE TABLE ledger_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq  bigint NOT NULL,
	hash text NOT NULL
);
INSERT INTO ledger_head (seq, hash) VALUES (0, '');

-- The mail queue. A job handed to an instance's mail worker is leased
-- to it (lease_owner) until lease_until.
CREATE SEQUENCE outbox_ids;
CREATE TABLE outbox (
	id          bigint PRIMARY KEY,
	next_at     timestamptz NOT NULL,
	subscriber  text COLLATE "C" NOT NULL,
	lease_owner text COLLATE "C",
	lease_until timestamptz,
	job         jsonb NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_at, id);
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE lease_owner IS NOT NULL;
CREATE INDEX outbox_subscriber ON outbox (subscriber);

-- Jobs that failed for good, kept for the operator.
CREATE TABLE outbox_parked (
	id         bigint PRIMARY KEY,
	subscriber text COLLATE "C" NOT NULL,
	job        jsonb NOT NULL
);
CREATE INDEX outbox_parked_subscriber ON outbox_parked (subscriber);

-- API keys by the SHA-256 of their secret.
CREATE TABLE api_keys (
	hash text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);

-- Suppressions by address hash (HMAC) and scope (a topic id or "*").
CREATE TABLE suppressions (
	hash  text COLLATE "C",
	scope text COLLATE "C",
	data  jsonb NOT NULL,
	PRIMARY KEY (hash, scope)
);

CREATE SEQUENCE audit_seqs;
CREATE TABLE audit (
	seq  bigint PRIMARY KEY,
	data jsonb NOT NULL
);

CREATE TABLE campaigns (
	id   text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);

CREATE TABLE campaign_recipients (
	campaign   text COLLATE "C",
	subscriber text COLLATE "C",
	data       jsonb NOT NULL,
	PRIMARY KEY (campaign, subscriber)
);
CREATE INDEX campaign_recipients_subscriber ON campaign_recipients (subscriber);

-- A campaign's first mails not yet out of the outbox.
CREATE TABLE campaign_queued (
	campaign   text COLLATE "C",
	job        bigint,
	subscriber text COLLATE "C" NOT NULL,
	PRIMARY KEY (campaign, job)
);

-- A campaign's timed follow-ups: kind r (reminder) or d (deadline).
CREATE TABLE campaign_due (
	due        timestamptz,
	kind       text COLLATE "C",
	campaign   text COLLATE "C",
	subscriber text COLLATE "C",
	PRIMARY KEY (due, kind, campaign, subscriber)
);

-- Keys every instance must share (the suppression list's HMAC key, token
-- keys the config does not give), generated once by the first instance.
CREATE TABLE secrets (
	name    text COLLATE "C" PRIMARY KEY,
	value   bytea NOT NULL,
	created timestamptz NOT NULL DEFAULT now()
);
