package postgres

import (
	"slices"
	"testing"
)

// TestSignupsFirst: the signups of a batch come first, then the other
// calls, each group in the order it came.
func TestSignupsFirst(t *testing.T) {
	a, b, c := &call{key: "a"}, &call{key: "b"}, &call{key: "c"}
	mail, hook := &call{}, &call{}
	got := signupsFirst([]*call{mail, a, hook, b, c})
	if want := []*call{a, b, c, mail, hook}; !slices.Equal(got, want) {
		t.Errorf("signupsFirst: got %v, want %v", got, want)
	}
}
