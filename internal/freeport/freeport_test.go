package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsComeFromBelowTheEphemeralRangeAndAreNeverGivenTwice: many ports
// asked for in a row are all distinct, bindable, below the range the kernel
// picks from for outgoing connections and ":0" listeners and below the
// NodePort range, and each is locked against any other holder.
func TestPortsComeFromBelowTheEphemeralRangeAndAreNeverGivenTwice(t *testing.T) {
	start := min(highest+1, ephemeralStart())
	if start-1-lowest < 1000 {
		t.Fatalf("this machine's ephemeral range starts at %d: the test needs room below it", ephemeralStart())
	}
	seen := map[int]bool{}
	for range 50 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= start {
			t.Errorf("port %d is outside [%d, %d)", p, lowest, start)
		}
		if seen[p] {
			t.Errorf("port %d was given twice", p)
		}
		seen[p] = true
		// Another holder (another process, or another open file here: flock
		// locks belong to the open file) cannot reserve it.
		if f, ok := reserve(lockDir(), p); ok {
			_ = f.Close()
			t.Errorf("port %d could be reserved again", p)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d is not free: %v", p, err)
			continue
		}
		_ = l.Close()
	}
}

// TestAPortInUseIsNotClaimed: a port someone listens on is not claimed, and
// the failed claim leaves its file unlocked.
func TestAPortInUseIsNotClaimed(t *testing.T) {
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	// Give our own reservation up, so that only the listener stands in the way.
	mu.Lock()
	f := held[len(held)-1]
	held = held[:len(held)-1]
	mu.Unlock()
	_ = f.Close()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	if g, ok := claim(lockDir(), p); ok {
		_ = g.Close()
		t.Fatalf("port %d is listened on, yet claimed", p)
	}
	g, ok := reserve(lockDir(), p)
	if !ok {
		t.Fatalf("the failed claim left port %d's file locked", p)
	}
	_ = g.Close()
}
