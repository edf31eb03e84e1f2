package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGCPercent is the manager's GOGC unless the environment sets one.
// Its heap is mostly its cache, live for as long as the Rollouts are: Go's
// default of 100 lets the heap grow to twice that before it collects, and
// an idle manager holds on to that much. At 50 an idle fleet's heap stays
// within 1.5 times its cache, for more collections while releasing
// (docs/performance.md has both figures).
const defaultGCPercent = 50

// cgroupMemoryLimits are where a container sees its memory limit: cgroup
// v2, then v1 (still the nodes of many clusters, and of this project's
// e2e node).
var cgroupMemoryLimits = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// noLimit is where a cgroup v1 limit means none: the kernel reports
// "unlimited" as the largest page-aligned int64.
const noLimit = int64(1) << 62

// tuneGC sets the collector's defaults where the environment sets none:
// GOGC, and a soft memory limit of 90 % of the container's, so that the
// collector works harder near the limit instead of the kernel killing the
// manager mid-release for garbage it could have collected.
func tuneGC(getenv func(string) string, limitFiles []string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit, ok := containerMemoryLimit(limitFiles); ok {
			debug.SetMemoryLimit(limit / 10 * 9)
		}
	}
}

// containerMemoryLimit reads the first of the files that exists: a byte
// count, or "max" (cgroup v2) or a huge number (v1) for no limit.
func containerMemoryLimit(files []string) (int64, bool) {
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= noLimit {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
