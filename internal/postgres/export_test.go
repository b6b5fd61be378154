package postgres

import "context"

// InsertTopicsInOneBatch runs one write call per id, all in one batch
// (as the committer gathers them), each inserting a topic row through
// the pipe, and returns each call's answer.
func (db *DB) InsertTopicsInOneBatch(ids ...string) []error {
	batch := make([]*call, len(ids))
	for i, id := range ids {
		batch[i] = &call{ctx: context.Background(), done: make(chan error, 1), fn: func(t *tx) error {
			return t.exec(`INSERT INTO topics (id, data) VALUES ($1, '{"id": "`+id+`"}')`, id)
		}}
	}
	db.commit(batch)
	errs := make([]error, len(ids))
	for i, c := range batch {
		errs[i] = <-c.done
	}
	return errs
}
