package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
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

	// In a container with a memory limit and nothing set: GOGC 50 and a
	// soft limit of 90 % of the container's, cgroup v2 or v1.
	for _, tc := range []struct {
		files []string
		limit int64
	}{
		{[]string{v2Limited, v1Limited}, 268435456},
		{[]string{absent, v1Limited}, 536870912},
	} {
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		tuneGC(env(nil), tc.files)
		if got := debug.SetGCPercent(100); got != defaultGCPercent {
			t.Errorf("GOGC = %d, want %d", got, defaultGCPercent)
		}
		if got := debug.SetMemoryLimit(-1); got != tc.limit/10*9 {
			t.Errorf("memory limit = %d with %v, want 90 %% of %d", got, tc.files, tc.limit)
		}
	}

	// What the environment sets wins (the runtime has read it already).
	debug.SetMemoryLimit(math.MaxInt64)
	tuneGC(env(map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}), []string{v2Limited})
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
