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

// cgroupMemoryMax is where a container's memory limit shows (cgroup v2).
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// tuneGC sets the collector's defaults where the environment sets none:
// GOGC, and a soft memory limit of 90 % of the container's, so that the
// collector works harder near the limit instead of the kernel killing the
// manager mid-release for garbage it could have collected.
func tuneGC(getenv func(string) string, memoryMax string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit, ok := containerMemoryLimit(memoryMax); ok {
			debug.SetMemoryLimit(limit / 10 * 9)
		}
	}
}

// containerMemoryLimit reads a cgroup v2 memory.max file: a byte count, or
// "max" (no limit), or nothing outside a container.
func containerMemoryLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}
