package storetest

import "testing"

// TestStorageIPsDistinct (review of 600e496, "one IP per signup"): the
// storage benchmarks sign up 100,000 (BenchmarkStorage's default), each
// from an IP address of its own.
func TestStorageIPsDistinct(t *testing.T) {
	seen := map[string]int{}
	for i := range 100_000 {
		ip := storageIP(i)
		if j, ok := seen[ip]; ok {
			t.Fatalf("signups %d and %d both come from %s", j, i, ip)
		}
		seen[ip] = i
	}
}
