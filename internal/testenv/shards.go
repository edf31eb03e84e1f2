package testenv

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// shardEnv marks a child process started by RunInShards, so that it runs
// the tests it is given instead of starting shards of its own.
const shardEnv = "SLUICE_TEST_SHARD"

// ShardsEnv overrides the number of shards a package asks RunInShards for
// (1: run in one process, as `go test` does by itself).
const ShardsEnv = "SLUICE_TEST_SHARDS"

// RunInShards runs a package's tests in n processes of this test binary at
// once, each with the API server its TestMain starts, and reports whether
// it did, and the exit code. A package whose envtest stories mostly wait
// (on timers, on the manager's next reconcile) takes a third of the time in
// three shards, and the shards share nothing: no cluster-scoped object, no
// process-wide registry, no namespace counter.
//
// It runs them in this process instead (false) when asked for something
// narrower than the whole package (-run, -bench, -fuzz, -list, profiles or
// coverage files), when SLUICE_TEST_SHARDS is 1, and in the shards
// themselves. Each shard's output is printed whole when it ends, so that
// the lines of one test stay together; a shard that fails fails the run.
func RunInShards(n int) (code int, sharded bool) {
	if !flag.Parsed() {
		flag.Parse()
	}
	if os.Getenv(shardEnv) != "" {
		return 0, false
	}
	if v := os.Getenv(ShardsEnv); v != "" {
		if i, err := strconv.Atoi(v); err == nil {
			n = i
		}
	}
	if n < 2 || narrowed() {
		return 0, false
	}
	names, err := listTests()
	if err != nil {
		fmt.Fprintln(os.Stderr, "listing the tests to shard:", err)
		return 1, true
	}
	if len(names) < n {
		n = len(names)
	}
	if n < 2 {
		return 0, false
	}
	// Round robin over the tests in source order: the stories of one file
	// (often alike in length) are spread over the shards.
	parts := make([][]string, n)
	for i, name := range names {
		parts[i%n] = append(parts[i%n], regexp.QuoteMeta(name))
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []int
	)
	for i, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := runShard(i, n, "^("+strings.Join(part, "|")+")$")
			mu.Lock()
			defer mu.Unlock()
			os.Stdout.Write(out)
			if err != nil {
				fmt.Printf("shard %d/%d of %d tests: %v\n", i+1, n, len(part), err)
				failed = append(failed, i+1)
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		fmt.Printf("FAIL: shards %v of %d failed\n", failed, n)
		return 1, true
	}
	return 0, true
}

// Listing reports whether this process was started only to list the tests
// (RunInShards' first step): its TestMain then needs no API server.
func Listing() bool {
	if !flag.Parsed() {
		flag.Parse()
	}
	return flagValue("test.list") != ""
}

// narrowed reports whether the run asks for a part of the package or for
// files the shards would write over each other.
func narrowed() bool {
	for _, name := range []string{"test.run", "test.skip", "test.bench", "test.fuzz", "test.list",
		"test.coverprofile", "test.cpuprofile", "test.memprofile", "test.blockprofile",
		"test.mutexprofile", "test.trace", "test.outputdir"} {
		if v := flagValue(name); v != "" {
			return true
		}
	}
	return false
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// listTests asks this binary for its tests, fuzz targets' seeds and
// examples (what -run selects), in source order.
func listTests() ([]string, error) {
	cmd := exec.Command(os.Args[0], "-test.list", ".")
	cmd.Env = append(os.Environ(), shardEnv+"=list")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "Benchmark") {
			names = append(names, line)
		}
	}
	return names, nil
}

// runShard runs this binary with the given flags and -run, and returns its
// output. A shard left behind by a `go test` timeout that killed this
// process ends at its own -test.timeout, which it was given too.
func runShard(i, n int, run string) ([]byte, error) {
	args := append(append([]string{}, os.Args[1:]...), "-test.run", run)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d/%d", shardEnv, i+1, n))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}
