package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary run as pause; with helperChildren it first
// starts that many short-lived children, which become zombies unless reaped.
const (
	helperEnv      = "SLUICE_PAUSE_HELPER"
	helperChildren = "children"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case helperChildren:
		sigs := notify()
		for range 5 {
			if _, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{}); err != nil {
				os.Exit(3)
			}
		}
		serve(sigs)
	default:
		main()
	}
}

// startPause runs the test binary as pause in the given helper mode.
func startPause(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestPauseExitsZeroOnSIGTERMAndSIGINT(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := startPause(t, "plain")
			time.Sleep(200 * time.Millisecond) // let it subscribe to signals
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("pause after %s: %v, want exit 0", sig, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("pause still running 5s after %s", sig)
			}
		})
	}
}

func TestPauseReapsItsExitedChildren(t *testing.T) {
	cmd := startPause(t, helperChildren)
	pid := cmd.Process.Pid
	time.Sleep(time.Second) // the children have exited by now
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		zombies := zombieChildren(t, pid)
		if len(zombies) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("children %v of pause are still zombies 6s after start", zombies)
		}
	}
}

// zombieChildren lists the PIDs whose parent is ppid and whose state is Z.
func zombieChildren(t *testing.T, ppid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var zombies []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process has gone
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[0] != "Z" {
			continue
		}
		if parent, _ := strconv.Atoi(fields[1]); parent == ppid {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			zombies = append(zombies, pid)
		}
	}
	return zombies
}
