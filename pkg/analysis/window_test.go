package analysis

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// windowQuerier answers 100 to every query and counts them; lookback says
// what its Lookback answers (the check's window when 0 and reads).
type windowQuerier struct {
	asked    atomic.Int32
	reads    bool
	lookback time.Duration
	err      error
}

func (q *windowQuerier) Query(context.Context, *sluicev1.Rollout, sluicev1.MetricCheck) (float64, error) {
	q.asked.Add(1)
	return 100, nil
}

func (q *windowQuerier) Lookback(_ context.Context, _ *sluicev1.Rollout, check sluicev1.MetricCheck) (time.Duration, error) {
	switch {
	case q.lookback > 0:
		return q.lookback, q.err
	case q.reads:
		return window(check), q.err
	}
	return 0, q.err
}

// plainQuerier is a Querier that cannot tell whether a query reads its
// window: it is taken to read it.
type plainQuerier struct{ asked atomic.Int32 }

func (q *plainQuerier) Query(context.Context, *sluicev1.Rollout, sluicev1.MetricCheck) (float64, error) {
	q.asked.Add(1)
	return 100, nil
}

// TestAThresholdCheckWaitsUntilItsWindowClearsTheRevisionServedBefore: the
// first checks of a release that follows another within the metric's
// window read the target's metrics from when it served the revision
// before (the last canary, which took all the traffic while it was
// promoted), and judged that revision as this one. Such a check now
// waits, asked nothing and counted neither way, until its window starts
// after status.previousCanaryUntil.
func TestAThresholdCheckWaitsUntilItsWindowClearsTheRevisionServedBefore(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	tests := []struct {
		name  string
		until *metav1.Time
		// interval is the check's window (DefaultMetricInterval when 0).
		interval time.Duration
		q        Querier
		wait     bool
		// waitFor is the length of the wait's message (1m when 0).
		waitFor time.Duration
	}{
		{name: "a target that served nothing before the run: asked", q: &windowQuerier{reads: true}},
		{name: "the revision before served 30s ago, in the 1m window: it waits", until: at(-30 * time.Second), q: &windowQuerier{reads: true}, wait: true},
		{name: "a window that starts exactly when the revision before stopped: asked", until: at(-time.Minute), q: &windowQuerier{reads: true}},
		{name: "a 20s window that starts after it: asked", until: at(-30 * time.Second), interval: 20 * time.Second, q: &windowQuerier{reads: true}},
		{name: "a time after now (a clock behind the one that wrote it): it waits", until: at(5 * time.Second), q: &windowQuerier{reads: true}, wait: true},
		{name: "a 20s window whose query reads 2m back (a range written into it): it waits", until: at(-30 * time.Second), interval: 20 * time.Second,
			q: &windowQuerier{lookback: 2 * time.Minute}, wait: true, waitFor: 2 * time.Minute},
		{name: "a 2m range written into the query, that started after the revision before: asked", until: at(-3 * time.Minute),
			q: &windowQuerier{lookback: 2 * time.Minute}},
		{name: "a query that reads no window (the latest value of a gauge): asked", until: at(-30 * time.Second), q: &windowQuerier{reads: false}},
		{name: "a querier that cannot tell: taken to read the window, it waits", until: at(-30 * time.Second), q: &plainQuerier{}, wait: true},
		{name: "telling failed: asked, so that the query reports its own error", until: at(-30 * time.Second), q: &windowQuerier{err: errors.New("template gone")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := sluicev1.MetricCheck{Name: "errors", ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0)}}
			if tt.interval > 0 {
				check.Interval = &metav1.Duration{Duration: tt.interval}
			}
			ro := exampleRollout(nil)
			ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{check}}
			ro.Status.PreviousCanaryUntil = tt.until

			res := Run(context.Background(), tt.q, ro, now)

			var asked int32
			switch q := tt.q.(type) {
			case *windowQuerier:
				asked = q.asked.Load()
			case *plainQuerier:
				asked = q.asked.Load()
			}
			ms := res.Metrics[0]
			if !tt.wait {
				if asked != 1 || ms.Verdict != VerdictPass || len(res.Held) != 0 || !res.RetryAt.IsZero() {
					t.Errorf("asked %d times, status %+v, held %v, retry at %v: want asked once and passed", asked, ms, res.Held, res.RetryAt)
				}
				return
			}
			if asked != 0 {
				t.Errorf("the provider was asked %d times while the window held the revision before", asked)
			}
			waitFor := cmp.Or(tt.waitFor, time.Minute)
			wantMsg := "errors: waiting until " + tt.until.Add(waitFor).UTC().Format(time.RFC3339) +
				" for its " + model.Duration(waitFor).String() + " window to hold only this revision (the target served the one before until " +
				tt.until.UTC().Format(time.RFC3339) + ")"
			if ms.Verdict != VerdictWait || ms.Message != wantMsg || ms.Value != "" || ms.CheckedAt == nil {
				t.Errorf("status %+v, want verdict Wait saying %q", ms, wantMsg)
			}
			if len(res.Failed) != 0 || len(res.Held) != 1 || res.Held[0] != wantMsg {
				t.Errorf("failed %v, held %v: a waiting check holds the step and fails nothing (onNoData fail)", res.Failed, res.Held)
			}
			if want := tt.until.Add(waitFor); !res.RetryAt.Equal(want) {
				t.Errorf("retry at %v, want %v, when the window clears", res.RetryAt, want)
			}
		})
	}
}

// TestTheStepIsCheckedAgainWhenTheLastWaitingCheckClears: of two checks
// that wait, the step can be checked again when the later one's window
// clears; a check that holds for no data says no time, and the step is
// then checked again an interval later.
func TestTheStepIsCheckedAgainWhenTheLastWaitingCheckClears(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	until := &metav1.Time{Time: now.Add(-30 * time.Second)}
	check := func(name string, window time.Duration) sluicev1.MetricCheck {
		return sluicev1.MetricCheck{Name: name, Interval: &metav1.Duration{Duration: window}, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0)}}
	}
	run := func(q Querier, checks ...sluicev1.MetricCheck) Result {
		ro := exampleRollout(nil)
		ro.Spec.Analysis = &sluicev1.Analysis{Metrics: checks}
		ro.Status.PreviousCanaryUntil = until
		return Run(context.Background(), q, ro, now)
	}

	res := run(&windowQuerier{reads: true}, check("errors", time.Minute), check("latency", 2*time.Minute), check("saturation", 10*time.Second))
	if want := until.Add(2 * time.Minute); !res.RetryAt.Equal(want) || len(res.Held) != 2 {
		t.Errorf("held %v, retry at %v: want 2 held until %v", res.Held, res.RetryAt, want)
	}

	noData := check("queue", 10*time.Second)
	noData.OnNoData = sluicev1.NoDataHold
	res = run(noDataFor{"queue"}, check("errors", time.Minute), noData)
	if len(res.Held) != 2 || !res.RetryAt.IsZero() {
		t.Errorf("held %v, retry at %v: want 2 held and no time (no one says when data comes)", res.Held, res.RetryAt)
	}
}

// noDataFor has no data for the named check and 100 for the others; every
// check reads its window.
type noDataFor struct{ name string }

func (q noDataFor) Query(_ context.Context, _ *sluicev1.Rollout, check sluicev1.MetricCheck) (float64, error) {
	if check.Name == q.name {
		return 0, ErrNoData
	}
	return 100, nil
}

// TestALookbackIsWhatTheQueryOrProviderReads: how far back each check
// reads, so how long it waits. A Prometheus query's text decides, however
// the window got there (.interval in any form, or written out); a
// provider that queries a time range of the window reads it whatever the
// text; any other provider reads it when its text uses .interval.
func TestALookbackIsWhatTheQueryOrProviderReads(t *testing.T) {
	tpl := func(name, query string, prov sluicev1.MetricProvider) client.Object {
		return &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: sluicev1.MetricTemplateSpec{Query: query, Provider: prov}}
	}
	web := sluicev1.MetricProvider{Type: sluicev1.ProviderWeb, Address: "http://stats.shop", JSONPath: "{.v}"}
	newRelic := sluicev1.MetricProvider{Type: sluicev1.ProviderNewRelic}
	influx := sluicev1.MetricProvider{Type: sluicev1.ProviderInfluxDB}
	objs := []client.Object{
		tpl("rate", `sum(rate(errors{app="{{ .target }}"}[{{ .interval }}]))`, sluicev1.MetricProvider{}),
		tpl("flagger-style", `sum(rate(errors{app="{{ target }}"}[{{ interval }}]))`, sluicev1.MetricProvider{}),
		tpl("printf", `{{ printf "errors[%s]" $.interval }}`, sluicev1.MetricProvider{}),
		tpl("written-out", `sum(rate(errors{app="{{ .target }}",path=~"/v[0-9]"}[5m]))`, sluicev1.MetricProvider{}),
		tpl("subquery", `max_over_time(rate(errors{app="{{ .target }}"}[{{ .interval }}])[10m:1m])`, sluicev1.MetricProvider{}),
		tpl("offset", `errors{app="{{ .target }}"} offset 2m`, sluicev1.MetricProvider{Type: sluicev1.ProviderPrometheus}),
		tpl("unreadable", `rate(errors[$window])`, sluicev1.MetricProvider{}),
		tpl("gauge", `max(queue_depth{app="{{ .target }}"})`, sluicev1.MetricProvider{}),
		tpl("web-latest", `/stats?app={{ .target }}`, web),
		tpl("web-body", `/stats`, sluicev1.MetricProvider{Type: sluicev1.ProviderWeb, Address: "http://stats.shop", JSONPath: "{.v}",
			Method: "POST", Body: `{"app": "{{ .target }}", "since": "{{ .interval }}"}`}),
		tpl("datadog", `avg:errors{app:{{ .target }}}`, sluicev1.MetricProvider{Type: sluicev1.ProviderDatadog}),
		tpl("external", `queue_depth`, sluicev1.MetricProvider{Type: sluicev1.ProviderKubernetes}),
		tpl("nrql", `SELECT count(*) FROM Transaction WHERE appName = '{{ .target }}' SINCE 5 minutes ago`, newRelic),
		tpl("nrql-last-hour", `SELECT count(*) FROM Transaction WHERE appName = '{{ .target }}'`, newRelic),
		tpl("nrql-today", `SELECT count(*) FROM Transaction SINCE today`, newRelic),
		tpl("influxql", `SELECT mean("value") FROM "errors" WHERE time > now() - 2m`, influx),
		tpl("influxql-interval", `SELECT mean("value") FROM "errors" WHERE time > now() - {{ .interval }}`, influx),
		tpl("influxql-all", `SELECT mean("value") FROM "errors"`, influx),
	}
	p, err := NewPrometheus(newReader(t, objs...), PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ro := exampleRollout(nil)
	const window = 30 * time.Second
	for _, tt := range []struct {
		template string
		compare  bool
		want     time.Duration
	}{
		{template: "", want: window}, // a built-in check: a rate over its window
		{template: "rate", want: window}, {template: "flagger-style", want: window}, {template: "printf", want: window},
		{template: "written-out", want: 5 * time.Minute},
		{template: "subquery", want: 10*time.Minute + window},
		{template: "offset", want: 2 * time.Minute},
		{template: "unreadable", want: window}, // taken to read its window
		{template: "gauge", want: 0}, {template: "web-latest", want: 0},
		{template: "web-body", want: window}, {template: "datadog", want: window},
		{template: "external", want: 0},
		// New Relic and InfluxDB queries carry their own time range.
		{template: "nrql", want: 5 * time.Minute},
		{template: "nrql-last-hour", want: time.Hour}, // New Relic's default
		{template: "nrql-today", want: window},        // not read: its window
		{template: "influxql", want: 2 * time.Minute},
		{template: "influxql-interval", want: window},
		{template: "influxql-all", want: window},
		// A compare check reads their series in buckets of the step (its
		// .interval) within its window, not the range written out.
		{template: "nrql", compare: true, want: 0},
		{template: "influxql-interval", compare: true, want: window},
		{template: "written-out", compare: true, want: 5 * time.Minute}, // PromQL: every sample reads it
	} {
		check := sluicev1.MetricCheck{Name: sluicev1.MetricRequestSuccessRate}
		if tt.template != "" {
			check = sluicev1.MetricCheck{Name: "m", TemplateRef: &sluicev1.MetricTemplateReference{Name: tt.template}}
		}
		check.Interval = &metav1.Duration{Duration: window}
		if tt.compare {
			check.Compare = &sluicev1.Compare{}
		}
		got, err := p.Lookback(context.Background(), ro, check)
		if err != nil || got != tt.want {
			t.Errorf("template %q (compare %v): looks back %v, %v; want %v", tt.template, tt.compare, got, err, tt.want)
		}
	}
	_, err = p.Lookback(context.Background(), ro, sluicev1.MetricCheck{Name: "m", TemplateRef: &sluicev1.MetricTemplateReference{Name: "missing"}})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing template: %v, want an error naming it", err)
	}
}

// countingReader counts the reads of a client.Reader.
type countingReader struct {
	client.Reader
	gets atomic.Int32
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets.Add(1)
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestACheckReadsItsTemplateOnce: templates are read from the API server.
// A check that learns how far back its query reads, then queries, and a
// compare check that queries both sides at once, read the template once.
func TestACheckReadsItsTemplateOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/query_range") {
			_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"],[1700000010,"1"],[1700000020,"1"],[1700000030,"1"],[1700000040,"1"],[1700000050,"1"]]}]}}`))
			return
		}
		_, _ = w.Write([]byte(promAnswer))
	}))
	t.Cleanup(srv.Close)
	reader := &countingReader{Reader: newReader(t, &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "errors", Namespace: "shop"},
		Spec: sluicev1.MetricTemplateSpec{Query: `sum(rate(errors{app="{{ .target }}"}[{{ .interval }}]))`, Provider: sluicev1.MetricProvider{Address: srv.URL}}})}
	p, err := NewPrometheus(reader, PrometheusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ref := &sluicev1.MetricTemplateReference{Name: "errors"}
	for _, tt := range []struct {
		name  string
		check sluicev1.MetricCheck
	}{
		{"a threshold check", sluicev1.MetricCheck{Name: "errors", TemplateRef: ref, ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(100.0)}}},
		{"a compare check", sluicev1.MetricCheck{Name: "errors", TemplateRef: ref, Compare: &sluicev1.Compare{
			Step: &metav1.Duration{Duration: 10 * time.Second}, MinSamples: 3}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ro := exampleRollout(nil)
			ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{tt.check}}
			// The revision before served long ago: the check is asked.
			ro.Status.PreviousCanaryUntil = &metav1.Time{Time: now.Add(-time.Hour)}
			ro.Status.RunStartedAt = &metav1.Time{Time: now.Add(-time.Hour)}
			before := reader.gets.Load()
			ms := Run(context.Background(), p, ro, now).Metrics[0]
			if ms.Verdict == VerdictError || ms.Verdict == VerdictWait {
				t.Fatalf("status %+v, want the check asked and answered", ms)
			}
			if n := reader.gets.Load() - before; n != 1 {
				t.Errorf("the template was read %d times in one check, want once", n)
			}
		})
	}
}

// lookbackSeries is a seriesAnswers that says how far back its query reads.
type lookbackSeries struct {
	*seriesAnswers
	lookback time.Duration
	err      error
}

func (q *lookbackSeries) Lookback(context.Context, *sluicev1.Rollout, sluicev1.MetricCheck) (time.Duration, error) {
	return q.lookback, q.err
}

// TestACompareCheckSamplesOnlyWhatReadsThisRevision: each sample of a
// compare check reads its query's lookback back from its own time, so the
// window starts once that clears status.previousCanaryUntil; with fewer
// than minSamples left the check waits rather than count no data.
func TestACompareCheckSamplesOnlyWhatReadsThisRevision(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	// A 5m window of 30s steps, minSamples 5, of a run that started 4m ago.
	for _, tt := range []struct {
		name     string
		until    *metav1.Time
		lookback time.Duration
		err      error
		plain    bool // a querier that cannot tell: one step back
		// start is the window's start when asked; zero when it waits.
		start time.Time
		// ready is when the wait ends.
		ready time.Time
	}{
		{name: "nothing served before the run: from the run's start", lookback: time.Minute, start: now.Add(-4 * time.Minute)},
		{name: "a sample of one step, the revision before long gone: from the run's start", until: at(-10 * time.Minute), lookback: 30 * time.Second, start: now.Add(-4 * time.Minute)},
		{name: "a 2m range written into the query, after a drain that ended as the run started: 2m after it",
			until: at(-4 * time.Minute), lookback: 2 * time.Minute, start: now.Add(-2 * time.Minute)},
		{name: "a 3m30s range: too few samples left, it waits", until: at(-4 * time.Minute), lookback: 3*time.Minute + 30*time.Second,
			ready: now.Add(-30*time.Second + 2*time.Minute)},
		{name: "a querier that cannot tell: one step", until: at(-4*time.Minute + 10*time.Second), plain: true,
			start: now.Add(-4*time.Minute + 40*time.Second)},
		{name: "telling failed: asked over the whole window, the query reports the error", until: at(-4 * time.Minute), lookback: time.Hour,
			err: errors.New("template gone"), start: now.Add(-4 * time.Minute)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check := latencyCheck(func(c *sluicev1.MetricCheck) { c.Interval = &metav1.Duration{Duration: 5 * time.Minute} })
			ro := exampleRollout(nil)
			ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{check}}
			ro.Status.RunStartedAt = at(-4 * time.Minute)
			ro.Status.PreviousCanaryUntil = tt.until
			series := &seriesAnswers{series: map[string][]float64{"latency/canary": noisy(200, 0.05, 10), "latency/primary": noisy(200, 0.05, 10)}}
			var q Querier = &lookbackSeries{seriesAnswers: series, lookback: tt.lookback, err: tt.err}
			if tt.plain {
				q = series
			}
			asked := func() []Window { return series.windows }
			res := Run(context.Background(), q, ro, now)
			ms := res.Metrics[0]
			if tt.start.IsZero() {
				want := "latency: waiting until " + tt.ready.Format(time.RFC3339) + " for 5 samples that hold only this revision (each reads " +
					model.Duration(tt.lookback).String() + " back; the target served the one before until " + tt.until.UTC().Format(time.RFC3339) + ")"
				if ms.Verdict != VerdictWait || ms.Message != want || len(res.Held) != 1 || len(res.Failed) != 0 {
					t.Errorf("status %+v, held %v, failed %v: want a Wait saying %q", ms, res.Held, res.Failed, want)
				}
				if n := len(asked()); n != 0 {
					t.Errorf("%d series queries while it waits, want none", n)
				}
				if !res.RetryAt.Equal(tt.ready) {
					t.Errorf("retry at %v, want %v, when it has its samples", res.RetryAt, tt.ready)
				}
				return
			}
			if ms.Verdict != VerdictPass {
				t.Errorf("status %+v, want Pass", ms)
			}
			for _, w := range asked() {
				if !w.Start.Equal(tt.start) || !w.End.Equal(now) {
					t.Errorf("window %v to %v, want %v to %v", w.Start, w.End, tt.start, now)
				}
			}
			if n := len(asked()); n != 2 {
				t.Errorf("%d series queries, want one per side", n)
			}
		})
	}
}
