package postgres

import "testing"

// TestMigrationWriters: a migration lets older versions write on only
// when its file says so: 0017 (an index dropped) from version 16, 0019
// (records older code cannot read) from its own.
func TestMigrationWriters(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]int{16: 16, 17: 16, 19: 19}
	for _, m := range ms {
		if w, ok := want[m.version]; ok && m.writers != w {
			t.Errorf("migration %s: writers from version %d, want %d", m.name, m.writers, w)
		}
	}
}
