// Package freeport hands out loopback TCP addresses for servers that a test
// or a harness starts as separate processes, which bind them a moment later.
//
// An address from "127.0.0.1:0" is free only until the listener closes: the
// port is in the kernel's ephemeral range, so in the moment before the server
// binds it any outgoing connection or other listener on the machine may take
// it (CI saw carbon-cache exit on "Address already in use" that way). The
// ports here come from below that range, where the kernel hands out none on
// its own, and below the NodePort range. Each is checked free and reserved
// by an flock on a file in the temporary directory, held until the process
// exits, so that neither this process nor another one using this package is
// given it twice.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Ports handed out lie in [lowest, highest]: above the ports servers on a
// development machine commonly listen on, and below Kubernetes' NodePort
// range (30000-32767), whose ports kube-proxy forwards on every address of
// a node, loopback included.
const (
	lowest  = 20000
	highest = 29999
)

var (
	mu sync.Mutex
	// held keeps the reservations' files open (and so their locks held)
	// for the life of the process.
	held []*os.File
)

// Addr returns a free loopback address, host:port, reserved for this
// process.
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// Port returns a free loopback port, reserved for this process.
func Port() (int, error) {
	top := min(highest, ephemeralStart()-1)
	if top-lowest < 1000 {
		// The machine's ephemeral range leaves no room below it: fall back
		// to the kernel's choice.
		return kernelPort()
	}
	dir := lockDir()
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		p := lowest + rand.IntN(top-lowest+1)
		if f, ok := claim(dir, p); ok {
			held = append(held, f)
			return p, nil
		}
	}
	return 0, errors.New("freeport: no free port found below the ephemeral range in 200 tries")
}

// claim reserves port if no other holder has and nothing listens on it.
func claim(dir string, port int) (*os.File, bool) {
	f, ok := reserve(dir, port)
	if !ok {
		return nil, false
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		_ = f.Close()
		return nil, false
	}
	_ = l.Close()
	return f, true
}

// lockDir holds one file per port reserved by any process on the machine.
func lockDir() string { return filepath.Join(os.TempDir(), "sluice-freeport") }

// reserve locks the port's file; false when another holder has it.
func reserve(dir string, port int) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, false
	}
	return f, true
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return n
}

func kernelPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("freeport: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
