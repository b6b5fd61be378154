-- The abuse defences' state, shared by every instance: token buckets
-- (per-address and per-network limits, the brake on confirmation mails,
-- failed sign-ins) and used proof-of-work challenges. UNLOGGED: it is not
-- evidence, and a crash that empties it only refills the buckets.

CREATE UNLOGGED TABLE limit_buckets (
	key     text COLLATE "C" PRIMARY KEY,
	tokens  double precision NOT NULL,
	at      timestamptz NOT NULL,
	-- full_at is when the bucket holds its burst again: from then on it
	-- is the same as a missing row and may be deleted.
	full_at timestamptz NOT NULL,
	-- took tells the statement that just wrote the row whether it took
	-- an event.
	took    boolean NOT NULL
);
CREATE INDEX limit_buckets_full_at ON limit_buckets (full_at);

-- limit_refill is a bucket's events at now: refilled at rate a second for
-- the time since at (never for a clock behind at), at most burst.
CREATE FUNCTION limit_refill(tokens float8, at timestamptz, now timestamptz, rate float8, burst float8)
RETURNS float8 LANGUAGE sql IMMUTABLE
RETURN least(burst, tokens + greatest(0, extract(epoch FROM now - at)::float8) * rate);

CREATE UNLOGGED TABLE spent_nonces (
	nonce   text COLLATE "C" PRIMARY KEY,
	expires timestamptz NOT NULL
);
CREATE INDEX spent_nonces_expires ON spent_nonces (expires);
