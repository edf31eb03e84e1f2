//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// rolloutReconciles reads controller-runtime's reconcile counter of the
// rollout controller from a manager's /metrics (0 when it never ran).
func rolloutReconciles(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "controller_runtime_reconcile_total{") || !strings.Contains(line, `controller="rollout"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", line, err)
		}
		total += int(n)
	}
	return total, nil
}

// metricValues reads the samples of a metric from a manager's /metrics:
// each series (its labels as printed) and its value.
func metricValues(url, name string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		out[strings.TrimPrefix(f[0], name)] = v
	}
	return out, nil
}

// TestTwoManagersDuringARollingUpgrade: two managers run at once, as the
// chart's two replicas do, and as old and new ones do during an upgrade.
// The one without the Lease reconciles nothing. Mid-release Sluice is
// upgraded by `helm upgrade` to a new image tag (the chart rolls the
// managers with maxUnavailable 0, so old and new run side by side and the
// stopping leader hands the Lease over). The manager that takes the Lease
// finishes the release from its status: weights only go forward, Promoted
// is recorded once, no request fails. The story upgrades a Sluice of its
// own, so the stories beside it keep theirs. On the way it checks what
// only a real pod shows: each manager paces its collector (a heap of a few
// MiB live gets 32 MiB of room, more than GOGC 100 gives it) with a soft
// limit of 90 % of its container's memory limit, and only the leader
// exports the Rollout's gauges.
func TestTwoManagersDuringARollingUpgrade(t *testing.T) {
	t.Parallel()
	s := NewStory(t, "two-managers")
	var changed time.Time
	var second, leader string
	var before int
	var routeWeights func() []string
	var sl *cluster.Sluice
	takeover := make(chan sluicev1.Phase, 1)
	// The steps are long enough that the release is still running when the
	// upgrade moves the Lease (helm's rolling upgrade takes about 25s here).
	s.Given("a Sluice of the story's own (two managers), app v1 behind a canary Rollout (steps 10..50, 10s each), under load", func() {
		sl = s.InstallOwnSluice()
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(10, 20, 30, 40, 50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 10 * time.Second}, Threshold: 2,
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		leader = sl.LeaseHolder(s.ctx)
		url, err := sl.NonLeaderMetricsURL(s.ctx)
		s.Must(err, "finding the manager without the Lease")
		second = url
		before, err = rolloutReconciles(second)
		s.Must(err, "reading the second manager's metrics")
		routeWeights = s.RecordRouteWeights()
		s.StartLoad(50)
		s.WaitServing("v1")
	}).When("v2 is released", func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
		s.Eventually(60*time.Second, "weight 30", func() (bool, string) {
			st := s.Status()
			return st.CanaryWeight == 30, fmt.Sprintf("phase %s weight %d", st.Phase, st.CanaryWeight)
		})
	}).Then("the second manager, without the Lease, has reconciled nothing", func() {
		n, err := rolloutReconciles(second)
		s.Must(err, "reading the second manager's metrics")
		if n != before {
			s.Fatalf("the manager without the Lease reconciled %d times", n-before)
		}
		if h := sl.LeaseHolder(s.ctx); h != leader {
			s.Fatalf("the Lease moved from %s to %s without a stop", leader, h)
		}
	}).And("only the leader exports the Rollout's gauges; both pace their collector within 90 % of their memory limit", func() {
		lead, err := sl.LeaderMetricsURL(s.ctx)
		s.Must(err, "finding the leader's pod")
		phases, err := metricValues(lead, "sluice_rollout_phase")
		s.Must(err, "reading the leader's metrics")
		progressing := fmt.Sprintf(`{name=%q,namespace=%q,phase="Progressing"}`, s.Rollout.Name, s.Rollout.Namespace)
		if phases[progressing] != 1 {
			s.Fatalf("the leader exports %v for sluice_rollout_phase, want %s 1", phases, progressing)
		}
		standby, err := metricValues(second, "sluice_rollout_phase")
		s.Must(err, "reading the second manager's metrics")
		if len(standby) != 0 {
			s.Fatalf("the manager without the Lease exports %d sluice_rollout_phase series, want none", len(standby))
		}
		d := &appsv1.Deployment{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: sl.Namespace, Name: sl.Deployment()}, d), "reading the manager Deployment")
		limit := d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().Value()
		for _, url := range []string{lead, second} {
			gogc, err := metricValues(url, "go_gc_gogc_percent")
			s.Must(err, "reading a manager's metrics")
			soft, err := metricValues(url, "go_gc_gomemlimit_bytes")
			s.Must(err, "reading a manager's metrics")
			// The pace sets GOGC from the live heap after each collection:
			// 32 MiB of room is over 100 % of a heap under 32 MiB live,
			// and the pace never sets more than 400.
			if g := gogc[""]; g <= 100 || g > 400 || soft[""] != float64(limit/10*9) {
				s.Fatalf("%s: GOGC %v and soft memory limit %v, want the manager's pace (over 100 for a small heap, at most 400) and 90 %% of the container's %d bytes", url, gogc, soft, limit)
			}
		}
	}).When("Sluice is upgraded: helm upgrade to a new image tag", func() {
		// Note the phase when another manager first holds the Lease: the
		// story is about a takeover mid-release.
		go func() {
			for s.ctx.Err() == nil {
				if h := sl.LeaseHolder(s.ctx); h != "" && h != leader {
					takeover <- s.Status().Phase
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		next, err := s.c.TagImage(s.c.Image("manager"), "upgrade")
		s.Must(err, "tagging the new manager image")
		t0 := time.Now()
		s.Must(sl.Install(s.ctx, next), "helm upgrade")
		s.Figure("real node: helm upgrade --wait", time.Since(t0).Round(time.Millisecond))
		d := &appsv1.Deployment{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: sl.Namespace, Name: sl.Deployment()}, d), "reading the manager Deployment")
		if img := d.Spec.Template.Spec.Containers[0].Image; img != next {
			s.Fatalf("manager image %s after the upgrade, want %s", img, next)
		}
	}).Then("a new manager takes the Lease and finishes the release", func() {
		select {
		case ph := <-takeover:
			s.Logf("another manager took the Lease in phase %s", ph)
			if ph == sluicev1.PhaseSucceeded {
				s.Fatalf("the release had ended before another manager took the Lease: the story did not test a takeover mid-release")
			}
		case <-time.After(60 * time.Second):
			s.Fatalf("no other manager took the Lease within 60s of the upgrade")
		}
		s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		// The pod that replaced the stopped one may have won the Lease
		// over the second: read whichever leads.
		url, err := sl.LeaderMetricsURL(s.ctx)
		s.Must(err, "finding the new leader's pod")
		if url != second {
			before = 0
		}
		s.Eventually(30*time.Second, "the new leader has reconciled", func() (bool, string) {
			n, err := rolloutReconciles(url)
			return err == nil && n > before, fmt.Sprintf("%d reconciles since it started (%v)", n-before, err)
		})
	}).And("the weights only went forward, the promotion was recorded once and no request failed", func() {
		s.ExpectForwardWeights(routeWeights(), "100/0 90/10 80/20 70/30 60/40 50/50 100/0")
		expectPromotedOnceWithoutFailures(s, changed)
	})
}
