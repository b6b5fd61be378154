-- The register of legitimate-interest assessments (GDPR Art. 6(1)(f)).
-- A row is written once and never updated: a revision is a new row whose
-- data names the one it supersedes.

CREATE TABLE assessments (
	id   text COLLATE "C" PRIMARY KEY,
	data jsonb NOT NULL
);
