package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a program the harness started. Its PID is the program itself
// (never a shell), and it is recorded in the state directory so that a
// later run can stop it when this one died without cleaning up.
type Proc struct {
	Name string
	Log  string // path of its combined stdout/stderr
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
	err  error
	reg  string // pid file in the state directory
}

// startProc runs bin with args, logging to dir/<name>.log.
func startProc(stateDir, logDir, name string, env []string, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Its own process group: a Ctrl-C of the test reaches the harness,
	// which stops the children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	p.reg = registerPID(stateDir, name, cmd.Process.Pid, cmd.Path)
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the program's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the program has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Proc) Stop(grace time.Duration) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if p.reg != "" {
			_ = os.Remove(p.reg)
		}
	})
}

// Kill sends SIGKILL and waits for the exit (a crash, not a shutdown).
func (p *Proc) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if p.reg != "" {
			_ = os.Remove(p.reg)
		}
	})
}

// Tail returns the last n bytes of the program's log.
func (p *Proc) Tail(n int) string { return tailFile(p.Log, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// registerPID writes "<pid> <binary>" to stateDir/procs/<name>-<pid>.
func registerPID(stateDir, name string, pid int, bin string) string {
	dir := filepath.Join(stateDir, "procs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d", name, pid))
	abs, _ := filepath.Abs(bin)
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%d %s\n", pid, abs)), 0o644); err != nil {
		return ""
	}
	return path
}

// sweepProcs kills the programs a previous run registered and left
// running. A PID is killed only when /proc/<pid>/exe still is the binary
// that was registered, so a reused PID is never hit.
func sweepProcs(stateDir string) []string {
	dir := filepath.Join(stateDir, "procs")
	entries, _ := os.ReadDir(dir)
	var killed []string
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		_ = os.Remove(path)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) != 2 {
			continue
		}
		pid, err := strconv.Atoi(fields[0])
		if err != nil || pid <= 1 {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || strings.TrimSuffix(exe, " (deleted)") != fields[1] {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil || !errors.Is(err, syscall.ESRCH) {
			killed = append(killed, e.Name())
		}
	}
	return killed
}

// registerChildren records the running children of this process whose
// binary is one of bins (envtest's etcd and kube-apiserver, which envtest
// starts itself), so that a sweep can stop them after a crash.
func registerChildren(stateDir string, bins ...string) {
	self := os.Getpid()
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		for _, b := range bins {
			if filepath.Base(exe) == b {
				registerPID(stateDir, "envtest-"+b, pid, exe)
			}
		}
	}
}
