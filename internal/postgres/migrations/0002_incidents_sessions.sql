-- The breach register (GDPR Art. 33(5)) and the console's sign-ins.

CREATE TABLE incidents (
	id   text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);

-- Console sessions by the hash of their id. A session has ended once
-- either end has passed; ended ones are deleted at the next sign-in.
CREATE TABLE sessions (
	id_hash    text COLLATE "C" PRIMARY KEY,
	idle_until timestamptz NOT NULL,
	expires    timestamptz NOT NULL,
	data       jsonb NOT NULL
);
