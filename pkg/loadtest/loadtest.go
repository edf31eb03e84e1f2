// Package loadtest is the loadtester's own load generator: it sends HTTP
// requests at a fixed rate (open model) and reports counts and latency
// percentiles. It never runs commands.
package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what one run may ask for, so that a webhook payload cannot
// turn the loadtester against someone.
const (
	MaxRate        = 5000
	MaxDuration    = 30 * time.Minute
	MaxConcurrency = 1000
	MaxRequests    = 2_000_000
)

// Spec describes a load run.
type Spec struct {
	// URL is the target (http or https).
	URL string
	// Method is the HTTP method (GET when empty).
	Method string
	// Rate is the number of requests started per second.
	Rate float64
	// Duration is how long requests are started for.
	Duration time.Duration
	// Concurrency bounds the requests in flight; a request whose turn comes
	// while all are busy is not sent and counted as Dropped (open model:
	// a slow target never slows down the schedule).
	Concurrency int
	// Header is sent with every request.
	Header http.Header
	// Body is sent with every request.
	Body []byte
	// Timeout bounds each request (10s when zero).
	Timeout time.Duration
}

// Validate checks a spec against the limits.
func (s Spec) Validate() error {
	u, err := url.Parse(s.URL)
	switch {
	case err != nil:
		return fmt.Errorf("url: %w", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("url %q must be an absolute http or https URL", s.URL)
	case !(s.Rate > 0) || s.Rate > MaxRate:
		return fmt.Errorf("rate %v must be in (0, %d]", s.Rate, MaxRate)
	case s.Duration <= 0 || s.Duration > MaxDuration:
		return fmt.Errorf("duration %s must be in (0, %s]", s.Duration, MaxDuration)
	case s.Concurrency < 0 || s.Concurrency > MaxConcurrency:
		return fmt.Errorf("concurrency %d must be in [0, %d]", s.Concurrency, MaxConcurrency)
	case s.total() > MaxRequests:
		return fmt.Errorf("rate x duration = %d requests, more than %d", s.total(), MaxRequests)
	}
	return nil
}

// total is the number of requests the run starts.
func (s Spec) total() int64 {
	return int64(math.Round(s.Rate * s.Duration.Seconds()))
}

// Latency holds latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50Ms"`
	P90 float64 `json:"p90Ms"`
	P99 float64 `json:"p99Ms"`
}

// Result is the outcome of a run.
type Result struct {
	// Requests is the number of requests sent.
	Requests int64 `json:"requests"`
	// Errors counts the non-2xx answers and the transport errors.
	Errors int64 `json:"errors"`
	// Dropped counts the requests not sent because Concurrency requests
	// were in flight.
	Dropped int64 `json:"dropped"`
	// StatusCodes counts the answers by status code.
	StatusCodes map[int]int64 `json:"statusCodes,omitempty"`
	// Latency of the requests sent, errors included.
	Latency Latency `json:"latency"`
	// Elapsed is the time from the first request to the last answer.
	Elapsed time.Duration `json:"elapsed"`
	// Rate is the achieved rate of requests started per second, over the
	// time requests were started.
	Rate float64 `json:"rate"`
	// LastError is one transport error, if any.
	LastError string `json:"lastError,omitempty"`
}

// Run sends the load described by spec with the given client (a client
// with no overall timeout when nil) and returns when every request has
// ended. Cancelling ctx stops starting requests; the result so far is
// returned with ctx's error.
func Run(ctx context.Context, hc *http.Client, spec Spec) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, err
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(spec.Concurrency, 64)}}
	}
	if spec.Method == "" {
		spec.Method = http.MethodGet
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 10 * time.Second
	}
	if spec.Concurrency == 0 {
		spec.Concurrency = min(MaxConcurrency, max(1, int(math.Ceil(spec.Rate))))
	}
	r := &runner{hc: hc, spec: spec, codes: map[int]int64{}, sem: make(chan struct{}, spec.Concurrency)}
	return r.run(ctx)
}

type runner struct {
	hc   *http.Client
	spec Spec
	sem  chan struct{}
	wg   sync.WaitGroup

	requests, errs, dropped atomic.Int64

	mu        sync.Mutex
	latencies []time.Duration
	codes     map[int]int64
	lastErr   error
}

func (r *runner) run(ctx context.Context) (Result, error) {
	total := r.spec.total()
	gap := time.Duration(float64(time.Second) / r.spec.Rate)
	start := time.Now()
	var lastTick time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
	var ctxErr error
	for i := int64(0); i < total; i++ {
		// Absolute schedule: a late tick never shifts the ones after it.
		due := start.Add(time.Duration(i) * gap)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				ctxErr = ctx.Err()
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			ctxErr = ctx.Err()
		}
		if ctxErr != nil {
			break
		}
		lastTick = time.Now()
		select {
		case r.sem <- struct{}{}:
		default:
			r.dropped.Add(1)
			continue
		}
		r.requests.Add(1)
		r.wg.Add(1)
		go r.one(ctx)
	}
	r.wg.Wait()
	return r.result(start, lastTick), ctxErr
}

// one sends one request and records its outcome.
func (r *runner) one(ctx context.Context) {
	defer r.wg.Done()
	defer func() { <-r.sem }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.spec.Timeout)
	defer cancel()
	var body io.Reader
	if r.spec.Body != nil {
		body = bytes.NewReader(r.spec.Body)
	}
	t0 := time.Now()
	code, err := r.send(ctx, body)
	lat := time.Since(t0)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latencies = append(r.latencies, lat)
	if err != nil {
		r.errs.Add(1)
		r.lastErr = err
		return
	}
	r.codes[code]++
	if code/100 != 2 {
		r.errs.Add(1)
	}
}

func (r *runner) send(ctx context.Context, body io.Reader) (int, error) {
	req, err := http.NewRequestWithContext(ctx, r.spec.Method, r.spec.URL, body)
	if err != nil {
		return 0, err
	}
	for k, v := range r.spec.Header {
		req.Header[k] = v
	}
	if h := r.spec.Header.Get("Host"); h != "" {
		req.Host = h
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return 0, err
	}
	// Read the body so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (r *runner) result(start, lastTick time.Time) Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := Result{
		Requests:    r.requests.Load(),
		Errors:      r.errs.Load(),
		Dropped:     r.dropped.Load(),
		StatusCodes: r.codes,
		Elapsed:     time.Since(start),
	}
	if r.lastErr != nil {
		res.LastError = r.lastErr.Error()
	}
	// The rate of the schedule's ticks (sent or dropped): n ticks span
	// n-1 gaps.
	if n := res.Requests + res.Dropped; n > 1 && lastTick.After(start) {
		res.Rate = float64(n-1) / lastTick.Sub(start).Seconds()
	}
	slices.Sort(r.latencies)
	res.Latency = Latency{P50: percentile(r.latencies, 50), P90: percentile(r.latencies, 90), P99: percentile(r.latencies, 99)}
	return res
}

// percentile returns the nearest-rank percentile of sorted latencies, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return float64(sorted[rank-1]) / float64(time.Millisecond)
}

// ErrBadSpec marks a spec that could not be read from metadata.
var ErrBadSpec = errors.New("bad load spec")
