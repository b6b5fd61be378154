package flight

import "testing"

// TestSettledStaysUntilRelease: a settled entry is skipped until the next
// Release; a dropped one at once.
func TestSettledStaysUntilRelease(t *testing.T) {
	var s Set
	s.Add(1)
	s.Add(2)
	s.Settle(1)
	s.Drop(2)
	if !s.Has(1) || s.Has(2) {
		t.Errorf("after Settle(1), Drop(2): Has(1) = %v, Has(2) = %v, want true, false", s.Has(1), s.Has(2))
	}
	s.Release()
	if s.Has(1) {
		t.Error("after Release: Has(1) = true, want false")
	}
	s.Add(1)
	s.Release()
	if !s.Has(1) {
		t.Error("an entry added again after it was released: Has(1) = false, want true (nothing settled)")
	}
}
