package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestTheCollectorDefaultsYieldToTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2Limited, v2Unlimited := file("v2-limited", "268435456\n"), file("v2-unlimited", "max\n")
	v1Limited, v1Unlimited := file("v1-limited", "536870912\n"), file("v1-unlimited", "9223372036854771712\n")
	absent := filepath.Join(dir, "absent")
	gcBefore, limitBefore := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(gcBefore); debug.SetMemoryLimit(limitBefore) })
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

	// In a container with a memory limit and nothing set: the manager's
	// pace and a soft limit of 90 % of the container's, cgroup v2 or v1.
	for _, tc := range []struct {
		files []string
		limit int64
	}{
		{[]string{v2Limited, v1Limited}, 268435456},
		{[]string{absent, v1Limited}, 536870912},
	} {
		debug.SetGCPercent(100)
		gcPercent.Store(0)
		debug.SetMemoryLimit(math.MaxInt64)
		if !tuneGC(env(nil), tc.files) {
			t.Errorf("tuneGC says the pace is not the manager's with no GOGC set")
		}
		if got, want := debug.SetGCPercent(100), int(gcPercent.Load()); got != want || got < defaultGCPercent || got > maxGCPercent {
			t.Errorf("GOGC = %d, want the manager's pace (%d, within %d–%d)", got, want, defaultGCPercent, maxGCPercent)
		}
		if got := debug.SetMemoryLimit(-1); got != tc.limit/10*9 {
			t.Errorf("memory limit = %d with %v, want 90 %% of %d", got, tc.files, tc.limit)
		}
	}

	// What the environment sets wins (the runtime has read it already).
	debug.SetMemoryLimit(math.MaxInt64)
	if tuneGC(env(map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}), []string{v2Limited}) {
		t.Errorf("tuneGC says the pace is the manager's with GOGC set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC = %d with GOGC=100 set, want it left alone", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit = %d with GOMEMLIMIT set, want it left alone", got)
	}

	// No container limit, or no cgroup file: no soft limit.
	for _, files := range [][]string{{v2Unlimited, v1Limited}, {absent, v1Unlimited}, {absent}} {
		tuneGC(env(nil), files)
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("memory limit = %d with %v, want none", got, files)
		}
	}
}

func TestTheCollectorsRoomIsHalfTheLiveHeapBetween32And64MiBButNeverUnderAQuarter(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, maxGCPercent},       // before the first collection
		{4 * mib, maxGCPercent}, // 32 MiB of room would be 800 %
		{16 * mib, 200},         // 32 MiB of room
		{32 * mib, 100},         // 32 MiB of room
		{48 * mib, 66},          // 32 MiB of room
		{64 * mib, 50},          // half: 32 MiB
		{100 * mib, 50},         // half: 50 MiB (1,000 Rollouts releasing)
		{128 * mib, 50},         // half: 64 MiB
		{160 * mib, 40},         // 64 MiB of room
		{207 * mib, 30},         // 64 MiB of room (10,000 idle Rollouts)
		{256 * mib, 25},         // 64 MiB, a quarter
		{2048 * mib, 25},        // a quarter
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("GOGC for %d MiB live = %d, want %d", tc.live/mib, got, tc.want)
		}
	}
}

func TestThePaceFollowsTheLiveHeapAfterEveryCollection(t *testing.T) {
	before := debug.SetGCPercent(100)
	gcPercent.Store(0)
	var stop atomic.Bool
	t.Cleanup(func() { stop.Store(true); debug.SetGCPercent(before) })
	followCollections(func() bool { return !stop.Load() && pace() })

	gogc := func() int {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}
	// waitFor collects until GOGC is what ok wants: the cleanup that sets
	// it runs on its own goroutine after the collection.
	waitFor := func(what string, ok func(int) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(gogc()) {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC = %d with %d MiB live, want %s", gogc(), liveHeap()>>20, what)
			}
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	}

	// A very large live heap (a large fleet's cache) gets a quarter of
	// itself.
	big := make([]byte, 300<<20)
	for i := range big {
		big[i] = 1
	}
	waitFor("25 for a heap over 256 MiB live", func(p int) bool { return p == minGCPercent })
	runtime.KeepAlive(big)
	big = nil

	// Freed, the heap of this test is a few MiB: 32 MiB of room is more
	// than 100 % of it.
	waitFor("over 100 for a small heap", func(p int) bool { return p > 100 })
	runtime.KeepAlive(big)
}
