package testenv_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// runSharded runs `go test` on testdata/sharded, whose TestMain asks for 3
// shards, and returns its output, whether it passed, and the shards each
// test ran in ("" for this process).
func runSharded(t *testing.T, env []string, args ...string) (string, bool, map[string][]string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", append([]string{"test", "-count=1"}, append(args, "./testdata/sharded")...)...)
	cmd.Env = append(os.Environ(), append([]string{"SHARDED_RECORD=" + dir, "SLUICE_TEST_SHARDS=", "SHARDED_FAIL="}, env...)...)
	out, err := cmd.CombinedOutput()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("go test: %v\n%s", err, out)
	}
	passed := err == nil
	ran := map[string][]string{}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		ran[f.Name()] = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	return string(out), passed, ran
}

var shardedTests = []string{"TestFailsWhenAsked", "TestFive", "TestFour", "TestOne", "TestThree", "TestTwo"}

func TestAWholePackageRunsEachTestOnceSpreadOverItsShards(t *testing.T) {
	out, passed, ran := runSharded(t, nil)
	if !passed {
		t.Fatalf("the sharded run failed:\n%s", out)
	}
	shards := map[string]bool{}
	for _, name := range shardedTests {
		if len(ran[name]) != 1 {
			t.Fatalf("%s ran in shards %q, want exactly one", name, ran[name])
		}
		shards[ran[name][0]] = true
	}
	if len(ran) != len(shardedTests) {
		t.Errorf("ran %d tests, want %d: %v", len(ran), len(shardedTests), ran)
	}
	if !shards["1/3"] || !shards["2/3"] || !shards["3/3"] || len(shards) != 3 {
		t.Errorf("the tests ran in shards %v, want 1/3, 2/3 and 3/3", shards)
	}
}

func TestATestFailingInOneShardFailsTheRunAndIsShown(t *testing.T) {
	out, passed, ran := runSharded(t, []string{"SHARDED_FAIL=1"})
	if passed {
		t.Fatalf("the run passed with a failing test:\n%s", out)
	}
	if !strings.Contains(out, "--- FAIL: TestFailsWhenAsked") || !strings.Contains(out, "failing as asked") {
		t.Errorf("the output does not show the failed test and why:\n%s", out)
	}
	if len(ran) != len(shardedTests) {
		t.Errorf("ran %d tests, want all %d: the other shards run to their end", len(ran), len(shardedTests))
	}
}

func TestANarrowedRunOrOneShardRunsInThisProcess(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"-run", nil, []string{"-run", "^TestOne$"}, []string{"TestOne"}},
		{"SLUICE_TEST_SHARDS=1", []string{"SLUICE_TEST_SHARDS=1"}, nil, shardedTests},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, passed, ran := runSharded(t, c.env, c.args...)
			if !passed {
				t.Fatalf("the run failed:\n%s", out)
			}
			var names []string
			for name, shards := range ran {
				names = append(names, name)
				if !slices.Equal(shards, []string{""}) {
					t.Errorf("%s ran in shards %q, want this process only", name, shards)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, c.want) {
				t.Errorf("ran %v, want %v", names, c.want)
			}
		})
	}
}
