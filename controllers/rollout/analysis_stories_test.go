package rollout_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/promtest"
	"github.com/sluice-dev/sluice/pkg/analysis"
)

// metricsWindow is the query window of the stories' metrics: ten 1s scrapes.
var metricsWindow = &metav1.Duration{Duration: 10 * time.Second}

// promStory is a story whose Sluice reads a real Prometheus scraping an
// exporter that stands in for the application's pods.
type promStory struct {
	*story
	prom *promtest.Server
	exp  *promtest.Exporter
}

func newPromStory(t *testing.T) *promStory {
	t.Helper()
	exp := promtest.NewExporter(t)
	prom := promtest.Start(t, exp.Addr)
	q, err := analysis.NewPrometheus(k8sClient, analysis.PrometheusOptions{Address: prom.URL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &promStory{story: newStoryWith(t, manager.Options{Metrics: q}), prom: prom, exp: exp}
}

// canaryPod is the metrics source of one of the target's pods.
func (s *promStory) canaryPod(target string) promtest.Source {
	return promtest.HTTPApp(s.ns, target+"-7d9f8b6c5-x2x4z")
}

// waitForData waits until Prometheus has a rate for the target's pods.
func (s *promStory) waitForData(target string) {
	s.t.Helper()
	s.prom.WaitFor(s.t, fmt.Sprintf(`rate(http_requests_total{namespace=%q,pod=~%q}[10s]) > 0`, s.ns, target+"-.*"), 30*time.Second)
}

func metric(c sluicev1.MetricCheck) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Spec.Analysis.Metrics = append(ro.Spec.Analysis.Metrics, c) }
}

func successRateAtLeast(min float64, onNoData sluicev1.NoDataPolicy) sluicev1.MetricCheck {
	return sluicev1.MetricCheck{Name: sluicev1.MetricRequestSuccessRate, Interval: metricsWindow,
		ThresholdRange: &sluicev1.ThresholdRange{Min: &min}, OnNoData: onNoData}
}

func p99AtMost(ms float64) sluicev1.MetricCheck {
	return sluicev1.MetricCheck{Name: sluicev1.MetricRequestDuration, Interval: metricsWindow,
		ThresholdRange: &sluicev1.ThresholdRange{Max: &ms}}
}

func metricStatus(ro *sluicev1.Rollout, name string) (sluicev1.MetricStatus, bool) {
	i := slices.IndexFunc(ro.Status.Metrics, func(m sluicev1.MetricStatus) bool { return m.Name == name })
	if i < 0 {
		return sluicev1.MetricStatus{}, false
	}
	return ro.Status.Metrics[i], true
}

func value(t *testing.T, ms sluicev1.MetricStatus) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(ms.Value, 64)
	if err != nil {
		t.Fatalf("metric %s has value %q: %v", ms.Name, ms.Value, err)
	}
	return v
}

func TestAHealthyCanaryPassesEveryCheckAndIsPromoted(t *testing.T) {
	s := newPromStory(t)
	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, Latency: 20 * time.Millisecond})
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2), metric(successRateAtLeast(99, "")), metric(p99AtMost(500)))
	s.waitForData("podinfo")

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s, want podinfo:2.0", img)
	}
	if ro.Status.FailedChecks != 0 {
		t.Errorf("failedChecks = %d, want 0", ro.Status.FailedChecks)
	}
	sr, ok := metricStatus(ro, sluicev1.MetricRequestSuccessRate)
	if !ok || sr.Verdict != analysis.VerdictPass || value(t, sr) != 100 || sr.CheckedAt == nil {
		t.Errorf("status of request-success-rate = %+v, want Pass at 100 with a time", sr)
	}
	d, ok := metricStatus(ro, sluicev1.MetricRequestDuration)
	if !ok || d.Verdict != analysis.VerdictPass || d.CheckedAt == nil {
		t.Errorf("status of request-duration = %+v, want Pass with a time", d)
	} else if v := value(t, d); v <= 10 || v > 25 {
		t.Errorf("request-duration = %vms, want the p99 of 20ms requests, in the (10, 25] ms bucket", v)
	}
	if slices.Contains(s.eventReasons("podinfo"), "CheckFailed") {
		t.Errorf("a healthy canary had a CheckFailed event: %v", s.eventReasons("podinfo"))
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestAnErrorRateAboveTheThresholdRollsBackAfterThresholdFailedChecks(t *testing.T) {
	s := newPromStory(t)
	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, ErrorRatio: 0.5, Latency: 5 * time.Millisecond})
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(5), metric(successRateAtLeast(99, "")))
	s.waitForData("podinfo")

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	if ro.Status.FailedChecks != 2 {
		t.Errorf("failedChecks = %d, want the threshold 2", ro.Status.FailedChecks)
	}
	sr, ok := metricStatus(ro, sluicev1.MetricRequestSuccessRate)
	if !ok || sr.Verdict != analysis.VerdictFail || sr.CheckedAt == nil || !strings.Contains(sr.Message, "below the minimum 99") {
		t.Errorf("status of request-success-rate = %+v, want Fail below the minimum", sr)
	} else if v := value(t, sr); v < 49 || v > 51 {
		t.Errorf("request-success-rate = %v, want about 50", v)
	}
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:1.0" {
		t.Errorf("primary image = %s, want the stable podinfo:1.0", img)
	}
	s.expectEvents("podinfo", "CheckFailed", 2)
	s.waitEvent("podinfo", "ThresholdReached")
	s.expectKStatus("podinfo", status.FailedStatus)
}

func TestNoDataFollowsTheMetricsPolicy(t *testing.T) {
	t.Run("hold keeps the step until data comes, then promotes", func(t *testing.T) {
		s := newPromStory(t)
		// Only the primary's pods serve: the canary has no series.
		s.exp.Set(promtest.HTTPApp(s.ns, "podinfo-primary-5c6d7f8b9-abcde"), promtest.Traffic{RPS: 50, Latency: time.Millisecond})
		s.deploy("podinfo", "podinfo:1.0")
		s.initialized("podinfo", iterations(2), metric(successRateAtLeast(99, sluicev1.NoDataHold)))
		s.prom.WaitFor(t, fmt.Sprintf(`http_requests_total{namespace=%q}`, s.ns), 30*time.Second)

		s.setImage("podinfo", "podinfo:2.0")

		var held *sluicev1.Rollout
		s.eventually(storyTimeout, "the step is held for lack of data", func() error {
			held = s.getRollout("podinfo")
			ms, ok := metricStatus(held, sluicev1.MetricRequestSuccessRate)
			if !ok || ms.Verdict != analysis.VerdictNoData {
				return fmt.Errorf("metric status %+v, phase %s", ms, held.Status.Phase)
			}
			return nil
		})
		if held.Status.Phase != sluicev1.PhaseProgressing || held.Status.FailedChecks != 0 ||
			!strings.Contains(held.Status.Message, "no verdict") {
			t.Errorf("while held: phase %s, failedChecks %d, message %q; want Progressing, 0, no verdict",
				held.Status.Phase, held.Status.FailedChecks, held.Status.Message)
		}

		s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, Latency: time.Millisecond})

		ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
		if ms, _ := metricStatus(ro, sluicev1.MetricRequestSuccessRate); ms.Verdict != analysis.VerdictPass {
			t.Errorf("last verdict %+v, want Pass", ms)
		}
		if ro.Status.FailedChecks != 0 {
			t.Errorf("failedChecks = %d, want 0: held checks do not count", ro.Status.FailedChecks)
		}
	})
	t.Run("fail counts each check without data and rolls back", func(t *testing.T) {
		s := newPromStory(t)
		s.exp.Set(promtest.HTTPApp(s.ns, "podinfo-primary-5c6d7f8b9-abcde"), promtest.Traffic{RPS: 50, Latency: time.Millisecond})
		s.deploy("podinfo", "podinfo:1.0")
		s.initialized("podinfo", iterations(3), metric(successRateAtLeast(99, sluicev1.NoDataFail)))
		s.prom.WaitFor(t, fmt.Sprintf(`http_requests_total{namespace=%q}`, s.ns), 30*time.Second)

		s.setImage("podinfo", "podinfo:2.0")

		ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
		ms, _ := metricStatus(ro, sluicev1.MetricRequestSuccessRate)
		if ro.Status.FailedChecks != 2 || ms.Verdict != analysis.VerdictNoData || ms.CheckedAt == nil {
			t.Errorf("failedChecks %d, metric %+v; want 2 and NoData", ro.Status.FailedChecks, ms)
		}
		s.waitEvent("podinfo", "ThresholdReached")
	})
}

// TestACanaryIsNotJudgedOnFewerRequestsThanMinRequests: a canary that
// answered a handful of requests, all good, reads 100 % successful. With
// minRequests its step holds, saying why, until it has answered enough
// over the window; then it is judged and promoted.
func TestACanaryIsNotJudgedOnFewerRequestsThanMinRequests(t *testing.T) {
	s := newPromStory(t)
	// About 20 requests in the 10 s window: a success rate of 100 % without
	// the guard.
	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 2, Latency: time.Millisecond})
	s.deploy("podinfo", "podinfo:1.0")
	guarded := successRateAtLeast(99, sluicev1.NoDataHold)
	min := int64(200)
	guarded.MinRequests = &min
	s.initialized("podinfo", iterations(2), metric(guarded))
	s.waitForData("podinfo")

	s.setImage("podinfo", "podinfo:2.0")

	var held *sluicev1.Rollout
	s.eventually(storyTimeout, "the step is held: too few requests to judge", func() error {
		held = s.getRollout("podinfo")
		if held.Status.Phase == sluicev1.PhaseSucceeded {
			t.Fatalf("promoted on the canary's few requests: metrics %+v", held.Status.Metrics)
		}
		ms, ok := metricStatus(held, sluicev1.MetricRequestSuccessRate)
		if !ok || ms.Verdict != analysis.VerdictNoData {
			return fmt.Errorf("metric status %+v, phase %s", ms, held.Status.Phase)
		}
		return nil
	})
	ms, _ := metricStatus(held, sluicev1.MetricRequestSuccessRate)
	if want := "fewer than 200 requests over the 10s window"; !strings.Contains(ms.Message, want) {
		t.Errorf("held check says %q, want it to say %q", ms.Message, want)
	}
	if held.Status.Phase != sluicev1.PhaseProgressing || held.Status.FailedChecks != 0 {
		t.Errorf("while held: phase %s, failedChecks %d; want Progressing and 0", held.Status.Phase, held.Status.FailedChecks)
	}

	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, Latency: time.Millisecond})

	ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if ms, _ := metricStatus(ro, sluicev1.MetricRequestSuccessRate); ms.Verdict != analysis.VerdictPass || value(t, ms) != 100 {
		t.Errorf("last verdict %+v, want Pass at 100", ms)
	}
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s, want podinfo:2.0", img)
	}
}

func TestAPrometheusThatIsDownNeverLetsACanaryBePromoted(t *testing.T) {
	s := newPromStory(t)
	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, Latency: time.Millisecond})
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2), metric(successRateAtLeast(99, sluicev1.NoDataPass)))
	s.waitForData("podinfo")
	s.prom.Stop()

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	ms, _ := metricStatus(ro, sluicev1.MetricRequestSuccessRate)
	if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, "connection refused") {
		t.Errorf("metric status %+v, want an Error saying the connection was refused", ms)
	}
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:1.0" {
		t.Errorf("primary image = %s, want the stable podinfo:1.0", img)
	}
	if slices.Contains(s.eventReasons("podinfo"), "Promoting") {
		t.Errorf("the canary went to promotion without Prometheus: %v", s.eventReasons("podinfo"))
	}
	s.expectKStatus("podinfo", status.FailedStatus)
}

func TestAMetricTemplateReachesAPrometheusBehindATokenCheckingProxy(t *testing.T) {
	s := newPromStory(t)
	proxy := promtest.NewAuthProxy(t, s.prom.URL, "s3cret")
	for _, app := range []string{"good", "bad", "borrowed"} {
		s.exp.Set(s.canaryPod(app), promtest.Traffic{RPS: 20, Latency: time.Millisecond})
	}
	s.must(k8sClient.Create(s.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "prom-token", Namespace: s.ns,
		Labels: map[string]string{sluicev1.MetricsCredentialsLabel: "true"}},
		StringData: map[string]string{"token": "s3cret"}}))
	// The right token in a Secret that has not opted in: never used.
	s.must(k8sClient.Create(s.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-token", Namespace: s.ns},
		StringData: map[string]string{"token": "s3cret"}}))
	query := `sum(rate(http_requests_total{namespace="{{ .namespace }}",pod=~"{{ .target }}-[a-z0-9]+-[a-z0-9]+"}[{{ .interval }}]))`
	for name, secret := range map[string]*sluicev1.LocalObjectReference{
		"with-token": {Name: "prom-token"}, "without-token": nil, "with-borrowed-token": {Name: "app-token"},
	} {
		s.must(k8sClient.Create(s.ctx, &sluicev1.MetricTemplate{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
			Spec: sluicev1.MetricTemplateSpec{
				Provider: sluicev1.MetricProvider{Address: proxy.URL, SecretRef: secret},
				Query:    query,
			},
		}))
	}
	rps := func(template string) sluicev1.MetricCheck {
		return sluicev1.MetricCheck{Name: "rps", TemplateRef: &sluicev1.MetricTemplateReference{Name: template},
			Interval: metricsWindow, ThresholdRange: &sluicev1.ThresholdRange{Min: ptrTo(1.0)}}
	}
	s.deploy("good", "app:1.0")
	s.deploy("bad", "app:1.0")
	s.deploy("borrowed", "app:1.0")
	s.initialized("good", iterations(2), metric(rps("with-token")))
	s.initialized("bad", iterations(2), metric(rps("without-token")))
	s.initialized("borrowed", iterations(2), metric(rps("with-borrowed-token")))
	s.waitForData("good")

	s.setImage("good", "app:2.0")
	s.setImage("bad", "app:2.0")
	s.setImage("borrowed", "app:2.0")

	good := s.waitPhase("good", sluicev1.PhaseSucceeded, storyTimeout)
	if ms, _ := metricStatus(good, "rps"); ms.Verdict != analysis.VerdictPass || value(t, ms) < 1 {
		t.Errorf("with the token: metric status %+v, want Pass", ms)
	}
	bad := s.waitPhase("bad", sluicev1.PhaseFailed, storyTimeout)
	if ms, _ := metricStatus(bad, "rps"); ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, "401") {
		t.Errorf("without the token: metric status %+v, want an Error with the proxy's 401", ms)
	}
	if proxy.Passed.Load() == 0 || proxy.Rejected.Load() == 0 {
		t.Errorf("the proxy let %d queries through and rejected %d; want both to happen", proxy.Passed.Load(), proxy.Rejected.Load())
	}
	s.waitEvent("bad", "CheckFailed")
	const refused = `Secret app-token lacks the label sluice.dev/metrics-credentials: "true"`
	borrowed := s.waitPhase("borrowed", sluicev1.PhaseFailed, storyTimeout)
	if ms, _ := metricStatus(borrowed, "rps"); ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, refused) {
		t.Errorf("with a Secret that did not opt in: metric status %+v, want an Error saying %q", ms, refused)
	}
	s.waitEventSaying("borrowed", "CheckFailed", refused)
}

// waitEventSaying waits for an event of the Rollout with the reason whose
// note holds the text.
func (s *story) waitEventSaying(name, reason, text string) {
	s.t.Helper()
	s.eventually(storyTimeout, "event "+reason+" saying "+text, func() error {
		var list eventsv1.EventList
		if err := k8sClient.List(s.ctx, &list, client.InNamespace(s.ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "Rollout" && e.Regarding.Name == name && e.Reason == reason && strings.Contains(e.Note, text) {
				return nil
			}
		}
		return fmt.Errorf("events so far: %v", s.eventReasons(name))
	})
}

func ptrTo[T any](v T) *T { return &v }

func TestAMetricTemplateWithAnUnknownVariableIsReportedAndNeverPromotes(t *testing.T) {
	s := newPromStory(t)
	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 20, Latency: time.Millisecond})
	s.must(k8sClient.Create(s.ctx, &sluicev1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "by-region", Namespace: s.ns},
		Spec:       sluicev1.MetricTemplateSpec{Query: `sum(rate(http_requests_total{region="{{ .variables.region }}"}[1m]))`},
	}))
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2), metric(sluicev1.MetricCheck{Name: "by-region",
		TemplateRef: &sluicev1.MetricTemplateReference{Name: "by-region"}, ThresholdRange: &sluicev1.ThresholdRange{Min: ptrTo(1.0)}}))

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	ms, _ := metricStatus(ro, "by-region")
	if ms.Verdict != analysis.VerdictError || !strings.Contains(ms.Message, `MetricTemplate by-region`) ||
		!strings.Contains(ms.Message, `map has no entry for key "region"`) {
		t.Errorf("metric status %+v, want an Error naming the template and the unknown variable", ms)
	}
	s.waitEvent("podinfo", "CheckFailed")
}

// TestABadCanaryReleasedRightAfterAGoodOneIsJudgedOnItsOwnTraffic: right
// after a promotion the target's metrics are the promoted canary's (it
// took all the traffic while the primary was updated). A release that
// followed within a metric's window was judged on them in its first
// check: the good revision before vouched for a bad one, promoted here
// after a single check. A check now waits until its window holds only the
// run's own traffic.
func TestABadCanaryReleasedRightAfterAGoodOneIsJudgedOnItsOwnTraffic(t *testing.T) {
	s := newPromStory(t)
	s.releaseAGoodRevisionThenABadOne(successRateAtLeast(70, sluicev1.NoDataHold))

	// The wait is shown while it lasts: verdict Wait, and the step's
	// message says until when.
	s.eventually(storyTimeout, "the check waits for its window", func() error {
		ro := s.getRollout("podinfo")
		sr, _ := metricStatus(ro, sluicev1.MetricRequestSuccessRate)
		if ro.Status.CanaryRevision == "" || ro.Status.PreviousCanaryUntil == nil || sr.Verdict != analysis.VerdictWait ||
			!strings.Contains(ro.Status.Message, "no verdict, holding the step: request-success-rate: waiting until") {
			return fmt.Errorf("canary %q, previousCanaryUntil %v, metric %+v, message %q", ro.Status.CanaryRevision,
				ro.Status.PreviousCanaryUntil, sr, ro.Status.Message)
		}
		return nil
	})
	ro := s.expectTheBadOneRolledBack(sluicev1.MetricRequestSuccessRate)
	if ro.Status.FailedChecks != 2 {
		t.Errorf("failedChecks = %d, want the threshold 2", ro.Status.FailedChecks)
	}
}

// releaseAGoodRevisionThenABadOne releases podinfo's revision 2, which
// answers well, under the check, and right after its promotion revision
// 3, which answers half its requests with 500 from its first one.
func (s *promStory) releaseAGoodRevisionThenABadOne(check sluicev1.MetricCheck) {
	s.t.Helper()
	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, Latency: 5 * time.Millisecond})
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(1), metric(check))
	s.waitForData("podinfo")
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, ErrorRatio: 0.5, Latency: 5 * time.Millisecond})
	s.setImage("podinfo", "podinfo:3.0")
}

// expectTheBadOneRolledBack waits for revision 3 of
// releaseAGoodRevisionThenABadOne to be rolled back on its own numbers.
func (s *promStory) expectTheBadOneRolledBack(metric string) *sluicev1.Rollout {
	s.t.Helper()
	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		s.t.Errorf("primary image = %s, want podinfo:2.0: the bad revision was promoted", img)
	}
	if ms, _ := metricStatus(ro, metric); ms.Verdict != analysis.VerdictFail {
		s.t.Errorf("status of %s = %+v, want Fail", metric, ms)
	}
	return ro
}

// successRateTemplate creates the MetricTemplate success-rate: the
// percentage of the target's requests answered without a 5xx, over a window
// written into the query ("10s"), not through {{ .interval }}.
func (s *promStory) successRateTemplate(window string) {
	s.t.Helper()
	sel := `namespace="{{ .namespace }}",pod=~"{{ .target }}-[a-z0-9]+-[a-z0-9]+"`
	s.must(k8sClient.Create(s.ctx, &sluicev1.MetricTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "success-rate", Namespace: s.ns},
		Spec: sluicev1.MetricTemplateSpec{Query: `100 * (1 - (sum(rate(http_requests_total{` + sel + `,code=~"5.."}[` + window + `])) or on() vector(0))` +
			` / sum(rate(http_requests_total{` + sel + `}[` + window + `])))`},
	}))
}

// TestAWindowWrittenIntoAQueryIsWaitedForToo: a template that writes its
// window into the query ([10s]) rather than through {{ .interval }} reads
// the previous revision's traffic just the same. Its check was asked at
// once, and a bad revision released right after a good one was promoted
// on the good one's numbers. The window Sluice waits for is now read from
// the query's range selectors.
func TestAWindowWrittenIntoAQueryIsWaitedForToo(t *testing.T) {
	s := newPromStory(t)
	s.successRateTemplate("10s")
	s.releaseAGoodRevisionThenABadOne(sluicev1.MetricCheck{Name: "success-rate",
		TemplateRef:    &sluicev1.MetricTemplateReference{Name: "success-rate"},
		ThresholdRange: &sluicev1.ThresholdRange{Min: ptrTo(70.0)}, OnNoData: sluicev1.NoDataHold})

	s.eventually(storyTimeout, "the check waits for the query's window", func() error {
		ro := s.getRollout("podinfo")
		sr, _ := metricStatus(ro, "success-rate")
		if sr.Verdict != analysis.VerdictWait || !strings.Contains(sr.Message, "for its 10s window") {
			return fmt.Errorf("canary %q, metric %+v", ro.Status.CanaryRevision, sr)
		}
		return nil
	})
	s.expectTheBadOneRolledBack("success-rate")
}

// TestAWaitingCheckIsAskedWhenItsWindowClears: a step held by a check whose
// window still read the revision before was checked again an interval
// later, though the wait said when the window would clear. It is now
// checked then, and the status says so (the step's hold ends then), so a
// restarted manager or a new leader would check then too.
func TestAWaitingCheckIsAskedWhenItsWindowClears(t *testing.T) {
	const interval, window = 20 * time.Second, 30 * time.Second
	s := newPromStory(t)
	s.successRateTemplate("30s")
	s.exp.Set(s.canaryPod("podinfo"), promtest.Traffic{RPS: 50, Latency: 5 * time.Millisecond})
	s.deploy("podinfo", "podinfo:1.0")
	// The first check comes an interval after the step's hold starts, while
	// the 30s window still reads the target's traffic from before the
	// takeover's drain ended: it waits, for less than an interval.
	s.initialized("podinfo", iterations(1), func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Interval = &metav1.Duration{Duration: interval}
	}, metric(sluicev1.MetricCheck{Name: "success-rate", TemplateRef: &sluicev1.MetricTemplateReference{Name: "success-rate"},
		ThresholdRange: &sluicev1.ThresholdRange{Min: ptrTo(90.0)}, OnNoData: sluicev1.NoDataHold}))
	s.setImage("podinfo", "podinfo:2.0")

	var ro *sluicev1.Rollout
	var waited sluicev1.MetricStatus
	s.eventually(storyTimeout, "the check waits for its window", func() error {
		ro = s.getRollout("podinfo")
		waited, _ = metricStatus(ro, "success-rate")
		if waited.Verdict != analysis.VerdictWait || waited.CheckedAt == nil {
			return fmt.Errorf("phase %s, metric %+v", ro.Status.Phase, waited)
		}
		return nil
	})
	clears := ro.Status.PreviousCanaryUntil.Add(window)
	s.t.Logf("checked at %s, waiting until %s (%s later)", waited.CheckedAt.Format(time.RFC3339), clears.Format(time.RFC3339), clears.Sub(waited.CheckedAt.Time))
	if !clears.Before(waited.CheckedAt.Add(interval)) {
		s.t.Fatalf("the window clears at %s, not within an interval of the check at %s: the story no longer tells the two apart", clears, waited.CheckedAt)
	}
	if got := ro.Status.StepStartedAt; got == nil || !got.Add(interval).Equal(clears) {
		s.t.Errorf("the step's hold (from %v) ends an interval later, want it to end at %s, when the window clears", got, clears.Format(time.RFC3339))
	}

	var next sluicev1.MetricStatus
	s.eventually(storyTimeout, "the check asked again", func() error {
		next, _ = metricStatus(s.getRollout("podinfo"), "success-rate")
		if next.CheckedAt == nil || !next.CheckedAt.After(waited.CheckedAt.Time) {
			return fmt.Errorf("metric %+v", next)
		}
		return nil
	})
	if next.CheckedAt.Time.Before(clears) || !next.CheckedAt.Time.Before(waited.CheckedAt.Add(interval)) {
		s.t.Errorf("asked again at %s: want from %s, when the window clears, and before %s, an interval after the wait",
			next.CheckedAt.Format(time.RFC3339), clears.Format(time.RFC3339), waited.CheckedAt.Add(interval).Format(time.RFC3339))
	}
	if next.Verdict == analysis.VerdictWait {
		s.t.Errorf("asked again and still waiting: %s", next.Message)
	}
}
