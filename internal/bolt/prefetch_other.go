//go:build !linux

package bolt

import "os"

// canAdvise is false where there is no posix_fadvise to call: prefetch
// then does nothing.
const canAdvise = false

func adviseWillNeed(*os.File, int64, int64) {}
