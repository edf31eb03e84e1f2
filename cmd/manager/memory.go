package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
)

// The collector's pace. Go's GOGC gives the heap room to grow in proportion
// to what is live: 100 % by default. The manager's heap is mostly its
// cache, live for as long as the Rollouts are, so a proportional room costs
// an idle fleet most: at GOGC 100, 10,000 idle Rollouts would hold twice
// their cache. A small fleet that releases has the opposite problem: its
// live heap is a few tens of MiB, so a proportional room means a collection
// every few MiB of garbage, and the garbage is what a release makes (watch
// events decoded, requests encoded). At GOGC 50, 100 releases at once were
// collected 52 times in 50 s, an eighth of the manager's CPU
// (docs/performance.md).
//
// So the room is half the live heap, but never less than minHeapRoom and
// never more than maxHeapRoom, unless a quarter of the live heap is more.
// A heap under 64 MiB live gets 32 MiB of room (a smaller heap
// proportionally more, up to GOGC maxGCPercent); 64 to 128 MiB live gets
// GOGC 50; 128 to 256 MiB gets 64 MiB; a larger heap GOGC 25. The cap is
// for the idle fleet: 10,000 idle Rollouts hold about 207 MiB live, and at
// GOGC 50 their 100 MiB of room was a quarter of the manager's RSS, for
// garbage that is mostly the scrapes' (about 30 MB a scrape, one every
// 30 s), so a 64 MiB room costs them a collection a minute. The floor of a
// quarter keeps a very large fleet that releases from collecting after
// every few MiB of garbage. The pace is set again after every collection,
// from the live heap that collection found.
const (
	// defaultGCPercent is the GOGC of a heap between 2 × minHeapRoom and
	// 2 × maxHeapRoom live.
	defaultGCPercent = 50
	// minGCPercent is the least the manager ever sets: the GOGC of a heap
	// of 4 × maxHeapRoom live or more.
	minGCPercent = 25
	// minHeapRoom is the least room between collections.
	minHeapRoom = 32 << 20
	// maxHeapRoom is the most room between collections of a heap under
	// 4 × maxHeapRoom live.
	maxHeapRoom = 64 << 20
	// maxGCPercent bounds the room of a tiny heap (at start).
	maxGCPercent = 400
)

// cgroupMemoryLimits are where a container sees its memory limit: cgroup
// v2, then v1 (still the nodes of many clusters, and of this project's
// e2e node).
var cgroupMemoryLimits = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// noLimit is where a cgroup v1 limit means none: the kernel reports
// "unlimited" as the largest page-aligned int64.
const noLimit = int64(1) << 62

// tuneGC sets the collector's defaults where the environment sets none:
// the pace above (in place of GOGC), and a soft memory limit of 90 % of the
// container's, so that the collector works harder near the limit instead of
// the kernel killing the manager mid-release for garbage it could have
// collected. It reports whether the pace is the manager's, to be kept with
// followCollections(pace).
func tuneGC(getenv func(string) string, limitFiles []string) (paced bool) {
	if getenv("GOMEMLIMIT") == "" {
		if limit, ok := containerMemoryLimit(limitFiles); ok {
			debug.SetMemoryLimit(limit / 10 * 9)
		}
	}
	if getenv("GOGC") != "" {
		return false
	}
	pace()
	return true
}

// pace sets GOGC for the heap the last collection found live; it is
// always true, for followCollections.
func pace() bool {
	setGCPercent(gcPercentFor(liveHeap()))
	return true
}

// gcPercentFor is the GOGC that gives a live heap of live bytes a room of
// max(min(max(live × defaultGCPercent/100, minHeapRoom), maxHeapRoom),
// live × minGCPercent/100), within maxGCPercent.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	room := min(max(live*defaultGCPercent/100, minHeapRoom), maxHeapRoom)
	room = max(room, live*minGCPercent/100)
	return int(min(max(room*100/live, minGCPercent), maxGCPercent))
}

// gcPercent is the GOGC last set by setGCPercent (0: none yet).
var gcPercent atomic.Int32

// setGCPercent sets GOGC when it changed: the runtime takes the heap's
// lock to apply it.
func setGCPercent(p int) {
	if gcPercent.Swap(int32(p)) != int32(p) {
		debug.SetGCPercent(p)
	}
}

// liveHeap is the heap the last collection found live (0 before the first).
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// followCollections calls after once after every collection, from the
// runtime's cleanup goroutine, for as long as it returns true: each call
// arms the next with an object that nothing references, so the next
// collection frees it and runs its cleanup. The object is 32 bytes, above
// the tiny allocator's 16, which would batch it with others and keep it
// alive as long as any of them.
func followCollections(after func() bool) {
	var arm func()
	arm = func() {
		runtime.AddCleanup(new([32]byte), func(struct{}) {
			if after() {
				arm()
			}
		}, struct{}{})
	}
	arm()
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
