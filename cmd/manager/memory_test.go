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
	limited := filepath.Join(dir, "limited")
	if err := os.WriteFile(limited, []byte("268435456\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlimited := filepath.Join(dir, "unlimited")
	if err := os.WriteFile(unlimited, []byte("max\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gcBefore, limitBefore := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(gcBefore); debug.SetMemoryLimit(limitBefore) })
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }

	// In a container with a 256 MiB limit and nothing set: GOGC 50 and a
	// soft limit of 90 % of the container's.
	tuneGC(env(nil), limited)
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC = %d, want %d", got, defaultGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != 268435456/10*9 {
		t.Errorf("memory limit = %d, want 90 %% of 256 MiB", got)
	}

	// What the environment sets wins (the runtime has read it already).
	debug.SetMemoryLimit(math.MaxInt64)
	tuneGC(env(map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}), limited)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC = %d with GOGC=100 set, want it left alone", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit = %d with GOMEMLIMIT set, want it left alone", got)
	}

	// No container limit, or no cgroup file: no soft limit.
	for _, path := range []string{unlimited, filepath.Join(dir, "absent")} {
		tuneGC(env(nil), path)
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("memory limit = %d with %s, want none", got, filepath.Base(path))
		}
	}
}
