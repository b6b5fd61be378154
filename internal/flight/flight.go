// Package flight keeps the set of queue entries a worker is sending, so
// that its reads of the queue skip them. An entry whose outcome was just
// committed stays skipped until the worker's next read begins: a read
// that began before the commit still holds the entry as it was, and
// would hand it out again.
package flight

import "sync"

// Set is the entries in flight, by id. The zero Set is empty and ready to
// use; it is safe for concurrent use.
type Set struct {
	mu      sync.Mutex
	in      map[uint64]bool
	settled []uint64
}

// Has reports whether id is in flight; a queue read's skip function.
func (s *Set) Has(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.in[id]
}

// Add puts id in flight.
func (s *Set) Add(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.in == nil {
		s.in = map[uint64]bool{}
	}
	s.in[id] = true
}

// Drop takes id out of flight at once: it was never sent.
func (s *Set) Drop(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.in, id)
}

// Settle marks id done once its outcome is committed; it stays in flight
// until Release.
func (s *Set) Settle(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settled = append(s.settled, id)
}

// Release takes the entries settled so far out of flight. A worker calls
// it right before it reads its queue, so that read begins after their
// outcomes were committed and sees them as they now are.
func (s *Set) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.settled {
		delete(s.in, id)
	}
	s.settled = s.settled[:0]
}
