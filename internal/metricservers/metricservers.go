// Package metricservers runs real metrics servers from Debian packages
// (influxdb, graphite-carbon with graphite-web, victoria-metrics) as plain
// processes for tests: each on free loopback ports in the test's temporary
// directory, killed in the test's cleanup. `make metric-servers` installs
// them; a missing binary fails the test with that hint.
package metricservers

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/promtest"
)

// InstallHint is what to run when a server's binary is missing.
const InstallHint = "run `make metric-servers` (it installs Debian's influxdb, graphite-carbon, graphite-web and victoria-metrics)"

// binary finds a server's binary on PATH or in /usr/bin.
func binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name
	}
	t.Fatalf("%s is neither on PATH nor in /usr/bin: %s", name, InstallHint)
	return ""
}

// process is a server process started for a test.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	logs *logBuffer
	once sync.Once
}

// start runs bin with args (no shell in between: the pid is the server's)
// and kills it in the test's cleanup.
func start(t testing.TB, name, dir string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, done: make(chan struct{}), logs: &logBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

func (p *process) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

// waitHTTP waits until url answers with status want.
func (p *process) waitHTTP(t testing.TB, url string, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", p.name, p.logs.String())
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("%s (pid %d) did not answer %s with %d within %s (last error %v):\n%s",
				p.name, p.cmd.Process.Pid, url, want, timeout, err, p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitTCP waits until addr accepts connections.
func (p *process) waitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited:\n%s", p.name, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("%s does not listen on %s within %s:\n%s", p.name, addr, timeout, p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string { return promtest.FreeAddr(t) }

// post sends a body and fails the test on anything but a 2xx.
func post(t testing.TB, url, contentType string, body []byte) {
	t.Helper()
	if err := postErr(url, contentType, body); err != nil {
		t.Fatal(err)
	}
}

// postErr sends a body; anything but a 2xx is an error.
func postErr(url, contentType string, body []byte) error {
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, b.String())
	}
	return nil
}

// logBuffer keeps the last 64 KiB of a process's output.
type logBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if n := len(b.buf); n > 64<<10 {
		b.buf = b.buf[n-64<<10:]
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
