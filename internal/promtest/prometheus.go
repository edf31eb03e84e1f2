// Package promtest runs a real Prometheus (Debian's prometheus package) as a
// plain process for tests, scraping test exporters whose request counters
// and latency histograms the test controls, and an authenticating reverse
// proxy to put in front of it.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/freeport"
)

// InstallHint is what to run when the prometheus binary is missing.
const InstallHint = "run hack/prometheus/install.sh (it installs Debian's prometheus package)"

// Binary returns the path of the prometheus binary: on PATH, or
// /usr/bin/prometheus.
func Binary() (string, error) {
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus", nil
	}
	return "", fmt.Errorf("the prometheus binary is neither on PATH nor at /usr/bin/prometheus: %s", InstallHint)
}

// Server is a Prometheus process started for a test.
type Server struct {
	// URL is Prometheus' base URL, e.g. http://127.0.0.1:40123.
	URL string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool
	logs    *logBuffer
}

// Start runs Prometheus on a free loopback port scraping the given targets
// (host:port) every second, and waits until it is ready. The process is
// killed in the test's cleanup. A missing binary fails the test.
func Start(t testing.TB, targets ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config(targets)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	s := &Server{URL: "http://" + addr, done: make(chan struct{}), logs: &logBuffer{}}
	s.cmd = exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	// s.cmd.Process.Pid is Prometheus itself: no shell in between.
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	if err := s.waitReady(15 * time.Second); err != nil {
		s.Stop()
		t.Fatalf("prometheus (pid %d) did not become ready: %v\n%s", s.cmd.Process.Pid, err, s.logs.String())
	}
	return s
}

// config renders a prometheus.yml that scrapes targets every second.
func config(targets []string) string {
	quoted := make([]string, len(targets))
	for i, t := range targets {
		quoted[i] = fmt.Sprintf("%q", t)
	}
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: test
    honor_labels: true
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.done:
			return errors.New("the process exited")
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s (last error %v)", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills Prometheus and waits for it to exit. It is safe to call twice.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Logs returns what Prometheus wrote so far.
func (s *Server) Logs() string { return s.logs.String() }

// Query runs an instant query and returns the samples' values (one per
// series), so that tests can wait for data without the code under test.
func (s *Server) Query(ctx context.Context, q string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decoding the answer to %q: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, body.Error)
	}
	var out []string
	for _, r := range body.Data.Result {
		if len(r.Value) == 2 {
			out = append(out, fmt.Sprint(r.Value[1]))
		}
	}
	return out, nil
}

// WaitFor polls the instant query q until it returns at least one sample.
func (s *Server) WaitFor(t testing.TB, q string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		vals, err := s.Query(context.Background(), q)
		if err == nil && len(vals) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus has no data for %q within %s (last: %v, %v)\n%s", q, timeout, vals, err, s.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FreeAddr returns a free loopback host:port, reserved (see
// internal/freeport) for the server the test starts next.
func FreeAddr(t testing.TB) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
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
