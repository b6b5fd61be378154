package bolt

import (
	"os"

	"golang.org/x/sys/unix"
)

const canAdvise = true

// adviseWillNeed starts reading n bytes of f from off into the page
// cache and returns without waiting for them. It is advice: an error is
// only a page not read ahead.
func adviseWillNeed(f *os.File, off, n int64) {
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_WILLNEED)
}
