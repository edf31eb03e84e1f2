package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// DefaultMaxRuns bounds the runs a Launcher runs at once.
const DefaultMaxRuns = 8

// Launcher starts load runs asked for by webhook calls, in the background or
// blocking, at most MaxRuns at once.
type Launcher struct {
	// HTTP sends the load (a client per run when nil).
	HTTP *http.Client
	// MaxRuns bounds the runs at once (DefaultMaxRuns when 0).
	MaxRuns int
	// MaxRate and MaxDuration cap the rate and the duration a run may ask
	// for, below the package's limits (MaxRate and MaxDuration when 0):
	// whoever writes a Rollout chooses them, the operator of the
	// loadtester bounds them.
	MaxRate     float64
	MaxDuration time.Duration
	// Log receives the result of each run.
	Log logr.Logger

	base context.Context
	mu   sync.Mutex
	runs int
	// active counts the runs under way by Rollout and URL (see
	// KeyWhileRunning).
	active map[string]int
	wg     sync.WaitGroup
}

// NewLauncher returns a launcher whose background runs stop when ctx ends.
func NewLauncher(ctx context.Context, hc *http.Client, log logr.Logger) *Launcher {
	return &Launcher{HTTP: hc, Log: log, base: ctx}
}

// Answer is the JSON body the loadtester answers a load request with.
type Answer struct {
	// Status is "started" (202), "done" (200) or "refused" (4xx).
	Status string  `json:"status"`
	Error  string  `json:"error,omitempty"`
	Result *Result `json:"result,omitempty"`
}

// Start reads the spec from md and runs it: in the background (202) or,
// when md asks for blocking, until done (200 with the result). key names
// the rollout in the logs.
func (l *Launcher) Start(ctx context.Context, key string, md map[string]string) (int, Answer) {
	spec, err := SpecFromMetadata(md)
	if err == nil {
		err = l.withinCaps(spec)
	}
	var mode string
	if err == nil {
		mode, err = whileRunning(md)
	}
	if err != nil {
		return http.StatusBadRequest, Answer{Status: "refused", Error: err.Error()}
	}
	runKey := key + " " + spec.URL
	switch l.acquire(runKey, mode == WhileRunningSkip) {
	case errTooMany:
		return http.StatusTooManyRequests, Answer{Status: "refused", Error: "too many load runs at once"}
	case errRunning:
		return http.StatusOK, Answer{Status: "running", Error: "a run for this Rollout and URL is still under way (whileRunning: skip)"}
	}
	log := l.Log.WithValues("rollout", key, "url", spec.URL, "rate", spec.Rate, "duration", spec.Duration.String())
	if Blocking(md) {
		defer l.release(runKey)
		res, err := Run(ctx, l.HTTP, spec)
		l.logResult(log, res, err)
		if err != nil {
			return http.StatusServiceUnavailable, Answer{Status: "cancelled", Error: err.Error(), Result: &res}
		}
		return http.StatusOK, Answer{Status: "done", Result: &res}
	}
	base := l.base
	if base == nil {
		base = context.Background()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.release(runKey)
		res, err := Run(base, l.HTTP, spec)
		l.logResult(log, res, err)
	}()
	log.Info("load run started")
	return http.StatusAccepted, Answer{Status: "started"}
}

// withinCaps checks a valid spec against the launcher's caps; the error
// names the flag that sets the cap, for the author of the Rollout to read.
func (l *Launcher) withinCaps(s Spec) error {
	if l.MaxRate > 0 && s.Rate > l.MaxRate {
		return fmt.Errorf("%w: rate %v is above this loadtester's cap of %v requests per second (--max-rate)", ErrBadSpec, s.Rate, l.MaxRate)
	}
	if l.MaxDuration > 0 && s.Duration > l.MaxDuration {
		return fmt.Errorf("%w: duration %s is above this loadtester's cap of %s (--max-duration)", ErrBadSpec, s.Duration, l.MaxDuration)
	}
	return nil
}

// Wait blocks until the background runs have ended.
func (l *Launcher) Wait() { l.wg.Wait() }

var (
	errTooMany = errors.New("too many runs")
	errRunning = errors.New("running")
)

// acquire takes a place for a run of runKey; with skip, none while a run of
// runKey is under way.
func (l *Launcher) acquire(runKey string, skip bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if skip && l.active[runKey] > 0 {
		return errRunning
	}
	limit := l.MaxRuns
	if limit <= 0 {
		limit = DefaultMaxRuns
	}
	if l.runs >= limit {
		return errTooMany
	}
	l.runs++
	if l.active == nil {
		l.active = map[string]int{}
	}
	l.active[runKey]++
	return nil
}

func (l *Launcher) release(runKey string) {
	l.mu.Lock()
	l.runs--
	if l.active[runKey]--; l.active[runKey] <= 0 {
		delete(l.active, runKey)
	}
	l.mu.Unlock()
}

func (l *Launcher) logResult(log logr.Logger, res Result, err error) {
	kv := []any{"requests", res.Requests, "errors", res.Errors, "dropped", res.Dropped,
		"p50Ms", res.Latency.P50, "p90Ms", res.Latency.P90, "p99Ms", res.Latency.P99, "rate", res.Rate}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error(err, "load run ended early", kv...)
		return
	}
	log.Info("load run done", kv...)
}
