// Package sharded is the package TestRunInShards runs: its tests record
// which shard ran them, and one fails when asked to.
package sharded

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestMain(m *testing.M) {
	if code, sharded := testenv.RunInShards(3); sharded {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// record writes the shard this test ran in (empty: not in a shard) to a
// file named after the test in $SHARDED_RECORD.
func record(t *testing.T) {
	dir := os.Getenv("SHARDED_RECORD")
	if dir == "" {
		t.Fatal("SHARDED_RECORD is not set")
	}
	f, err := os.OpenFile(filepath.Join(dir, t.Name()), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(os.Getenv("SLUICE_TEST_SHARD") + "\n"); err != nil {
		t.Fatal(err)
	}
}

func TestOne(t *testing.T)   { record(t) }
func TestTwo(t *testing.T)   { record(t) }
func TestThree(t *testing.T) { record(t) }
func TestFour(t *testing.T)  { record(t) }
func TestFive(t *testing.T)  { record(t) }

func TestFailsWhenAsked(t *testing.T) {
	record(t)
	if os.Getenv("SHARDED_FAIL") != "" {
		t.Fatal("failing as asked")
	}
}
