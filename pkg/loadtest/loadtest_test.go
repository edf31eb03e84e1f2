package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// target is a test app whose every third request fails with 500.
type target struct {
	mu      sync.Mutex
	n       int
	headers []http.Header
	methods []string
}

func (a *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.n++
	n := a.n
	a.headers = append(a.headers, r.Header.Clone())
	a.methods = append(a.methods, r.Method)
	a.mu.Unlock()
	if n%3 == 0 {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

func TestRunSendsRateTimesDurationRequestsAndCountsNon2xxAsErrors(t *testing.T) {
	app := &target{}
	srv := httptest.NewServer(app)
	defer srv.Close()
	spec := Spec{URL: srv.URL, Method: http.MethodPost, Rate: 200, Duration: 300 * time.Millisecond, Concurrency: 20,
		Header: http.Header{"X-Canary": {"1"}}}

	res, err := Run(context.Background(), nil, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests+res.Dropped != 60 {
		t.Errorf("requests %d + dropped %d, want 60 (200/s for 300ms)", res.Requests, res.Dropped)
	}
	if app.n != int(res.Requests) {
		t.Errorf("the target saw %d requests, the result says %d", app.n, res.Requests)
	}
	if want := int64(app.n / 3); res.Errors != want || res.StatusCodes[500] != want || res.StatusCodes[200] != int64(app.n)-want {
		t.Errorf("errors %d, codes %v; want %d errors (every third request fails)", res.Errors, res.StatusCodes, want)
	}
	for i, h := range app.headers {
		if h.Get("X-Canary") != "1" || app.methods[i] != http.MethodPost {
			t.Fatalf("request %d: method %s, headers %v", i, app.methods[i], h)
		}
	}
	if !(res.Latency.P50 > 0 && res.Latency.P50 <= res.Latency.P90 && res.Latency.P90 <= res.Latency.P99) {
		t.Errorf("latency percentiles %+v are not ordered and positive", res.Latency)
	}
}

func TestTransportErrorsCountAsErrors(t *testing.T) {
	// A loopback port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	res, err := Run(context.Background(), nil, Spec{URL: "http://" + addr + "/", Rate: 100, Duration: 100 * time.Millisecond, Concurrency: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != res.Requests || res.LastError == "" {
		t.Errorf("requests %d, errors %d, lastError %q: every request should fail", res.Requests, res.Errors, res.LastError)
	}
}

func TestARequestWhoseTurnComesWhileAllAreBusyIsDroppedNotQueued(t *testing.T) {
	// The target answers no request: each holds its slot until the
	// request timeout, longer than the whole schedule.
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	res, err := Run(context.Background(), nil, Spec{URL: srv.URL, Rate: 100, Duration: 200 * time.Millisecond, Concurrency: 2, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 2 || res.Dropped != 18 || res.Errors != 2 {
		t.Errorf("requests %d, dropped %d, errors %d: want 2 sent (and timed out) and the 18 other ticks dropped",
			res.Requests, res.Dropped, res.Errors)
	}
}

func TestCancellingStopsTheRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, nil, Spec{URL: srv.URL, Rate: 10, Duration: time.Hour / 2})
	if !errors.Is(err, context.Canceled) || res.Requests > 1 {
		t.Errorf("Run on a cancelled context = %d requests, %v", res.Requests, err)
	}
}

func TestSpecsBeyondTheLimitsAreRefused(t *testing.T) {
	for name, s := range map[string]Spec{
		"no scheme":       {URL: "localhost:80", Rate: 1, Duration: time.Second},
		"file url":        {URL: "file:///etc/passwd", Rate: 1, Duration: time.Second},
		"zero rate":       {URL: "http://x", Rate: 0, Duration: time.Second},
		"rate too high":   {URL: "http://x", Rate: MaxRate + 1, Duration: time.Second},
		"too long":        {URL: "http://x", Rate: 1, Duration: MaxDuration + time.Second},
		"too concurrent":  {URL: "http://x", Rate: 1, Duration: time.Second, Concurrency: MaxConcurrency + 1},
		"too many in all": {URL: "http://x", Rate: MaxRate, Duration: MaxDuration},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%s: %+v accepted", name, s)
		}
	}
}

func TestSpecFromMetadataReadsHeadersBothWays(t *testing.T) {
	s, err := SpecFromMetadata(map[string]string{
		"url": "http://podinfo-canary.shop:9898/", "rate": "50", "duration": "30s", "concurrency": "5", "method": "post",
		"headers":        `{"X-From-Json": "a", "X-Both": "json"}`,
		"header-X-Foo":   "bar",
		"header-X-Both":  "key",
		"timeout":        "2s",
		"unrelated-note": "ignored",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Rate != 50 || s.Duration != 30*time.Second || s.Concurrency != 5 || s.Method != "POST" || s.Timeout != 2*time.Second {
		t.Errorf("spec = %+v", s)
	}
	if s.Header.Get("X-Foo") != "bar" || s.Header.Get("X-From-Json") != "a" || s.Header.Get("X-Both") != "key" {
		t.Errorf("headers = %v (header-<Name> keys win over the JSON map)", s.Header)
	}
	for name, md := range map[string]map[string]string{
		"no url":       {"rate": "1"},
		"bad rate":     {"url": "http://x", "rate": "fast"},
		"bad duration": {"url": "http://x", "duration": "10"},
		"bad headers":  {"url": "http://x", "headers": "X-Foo: bar"},
	} {
		if _, err := SpecFromMetadata(md); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%s: err = %v, want ErrBadSpec", name, err)
		}
	}
}

func TestTheLauncherAnswersAtOnceOrWithTheResultWhenBlocking(t *testing.T) {
	app := &target{}
	srv := httptest.NewServer(app)
	defer srv.Close()
	l := NewLauncher(context.Background(), nil, logr.Discard())
	md := map[string]string{"url": srv.URL, "rate": "100", "duration": "100ms"}

	code, ans := l.Start(context.Background(), "shop/web", md)
	if code != http.StatusAccepted || ans.Status != "started" || ans.Result != nil {
		t.Errorf("async start = %d %+v, want 202 started", code, ans)
	}
	l.Wait()

	md["blocking"] = "true"
	code, ans = l.Start(context.Background(), "shop/web", md)
	if code != http.StatusOK || ans.Result == nil || ans.Result.Requests+ans.Result.Dropped != 10 {
		t.Fatalf("blocking start = %d %+v, want 200 with 10 requests", code, ans)
	}
	raw, _ := json.Marshal(ans)
	for _, field := range []string{`"requests":`, `"errors":`, `"p50Ms":`, `"p90Ms":`, `"p99Ms":`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("answer %s lacks %s", raw, field)
		}
	}
	if code, ans := l.Start(context.Background(), "shop/web", map[string]string{"url": "ftp://x"}); code != http.StatusBadRequest || ans.Error == "" {
		t.Errorf("bad spec = %d %+v, want 400 with the reason", code, ans)
	}
}

func TestTheLauncherRefusesRunsBeyondItsLimit(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	l := &Launcher{MaxRuns: 1, Log: logr.Discard()}
	md := map[string]string{"url": srv.URL, "rate": "1", "duration": "1s"}
	if code, _ := l.Start(context.Background(), "shop/a", md); code != http.StatusAccepted {
		t.Fatalf("first run = %d", code)
	}
	if code, _ := l.Start(context.Background(), "shop/b", md); code != http.StatusTooManyRequests {
		t.Errorf("second run at a limit of 1 = %d, want 429", code)
	}
}

func TestTheLauncherRefusesRunsAboveItsCapsSayingWhich(t *testing.T) {
	// The caps are below the package's limits: an operator lowers them
	// for their cluster (--max-rate, --max-duration).
	l := &Launcher{MaxRate: 50, MaxDuration: time.Minute, Log: logr.Discard()}
	for name, tc := range map[string]struct {
		md   map[string]string
		want string
	}{
		"rate":     {map[string]string{"url": "http://x", "rate": "51", "duration": "1s"}, "rate 51 is above this loadtester's cap of 50 requests per second (--max-rate)"},
		"duration": {map[string]string{"url": "http://x", "rate": "1", "duration": "61s"}, "duration 1m1s is above this loadtester's cap of 1m0s (--max-duration)"},
		// The default duration (1m) is within a cap of 1m.
		"rate, default duration": {map[string]string{"url": "http://x", "rate": "100"}, "--max-rate"},
	} {
		code, ans := l.Start(context.Background(), "shop/web", tc.md)
		if code != http.StatusBadRequest || ans.Status != "refused" || !strings.Contains(ans.Error, tc.want) {
			t.Errorf("%s: %d %+v, want 400 refused saying %q", name, code, ans, tc.want)
		}
	}
	if l.runs != 0 {
		t.Errorf("%d runs held after refusals", l.runs)
	}
}

// BenchmarkRateAccuracy measures the achieved rate of a 200 req/s run on
// loopback; the target is within 10% of the requested rate. It reports the
// achieved rate and its ratio to the requested one.
func BenchmarkRateAccuracy(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	const rate = 200.0
	var sum float64
	var sent, errs int64
	for b.Loop() {
		res, err := Run(context.Background(), nil, Spec{URL: srv.URL, Rate: rate, Duration: time.Second, Concurrency: 50})
		if err != nil {
			b.Fatal(err)
		}
		sum += res.Rate
		sent += res.Requests
		errs += res.Errors + res.Dropped
	}
	achieved := sum / float64(b.N)
	b.ReportMetric(achieved, "req/s")
	b.ReportMetric(achieved/rate, "achieved/requested")
	b.ReportMetric(float64(sent)/float64(b.N), "requests/run")
	b.ReportMetric(float64(errs), "errors+dropped")
}

// TestWhileRunningSkipAnswersWithoutASecondRun: Flagger's loadtester skips
// a command still running from an earlier call; Sluice's starts a new run per
// call unless the webhook asks for `whileRunning: skip`.
func TestWhileRunningSkipAnswersWithoutASecondRun(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1); <-release }))
	defer srv.Close()
	l := &Launcher{Log: logr.Discard()}
	md := map[string]string{"url": srv.URL, "rate": "1", "duration": "2s", "whileRunning": "skip"}
	if code, ans := l.Start(context.Background(), "shop/web", md); code != http.StatusAccepted || ans.Status != "started" {
		t.Fatalf("first call = %d %+v, want 202 started", code, ans)
	}
	if code, ans := l.Start(context.Background(), "shop/web", md); code != http.StatusOK || ans.Status != "running" {
		t.Errorf("second call while the first runs = %d %+v, want 200 running (skipped)", code, ans)
	}
	if code, ans := l.Start(context.Background(), "shop/other", md); code != http.StatusAccepted {
		t.Errorf("another Rollout's call = %d %+v, want its own run", code, ans)
	}
	delete(md, "whileRunning")
	if code, ans := l.Start(context.Background(), "shop/web", md); code != http.StatusAccepted {
		t.Errorf("a call without whileRunning = %d %+v, want a new run (the default)", code, ans)
	}
	if code, ans := l.Start(context.Background(), "shop/web", map[string]string{"url": srv.URL, "whileRunning": "wait"}); code != http.StatusBadRequest || !strings.Contains(ans.Error, "whileRunning") {
		t.Errorf("an unknown whileRunning = %d %+v, want 400 naming it", code, ans)
	}
	close(release)
	l.Wait()
	if code, ans := l.Start(context.Background(), "shop/web", map[string]string{"url": srv.URL, "rate": "1", "duration": "1s", "whileRunning": "skip", "blocking": "true"}); code != http.StatusOK || ans.Status != "done" {
		t.Errorf("a call once the run ended = %d %+v, want a new run", code, ans)
	}
}
