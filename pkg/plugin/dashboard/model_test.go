package dashboard

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/steps"
)

// rollout builds a canary Rollout (a positive weight is a step, 0 a manual
// pause) with the given status.
func rollout(st sluicev1.RolloutStatus, weights ...int32) *sluicev1.Rollout {
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "test", Name: "podinfo", UID: "uid-1"}, Status: st}
	var s []sluicev1.CanaryStep
	for _, w := range weights {
		if w == 0 {
			s = append(s, sluicev1.CanaryStep{Pause: &sluicev1.PauseStep{}})
			continue
		}
		s = append(s, sluicev1.CanaryStep{SetWeight: ptr.To(w)})
	}
	ro.Spec.Strategy.Canary = &sluicev1.CanaryStrategy{Steps: s}
	return ro
}

func cond(typ, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: "R", Message: msg}
}

func TestAttentionMarksRolloutsThatNeedAPerson(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   sluicev1.RolloutStatus
		want string
	}{
		{"a failed release", sluicev1.RolloutStatus{Phase: sluicev1.PhaseFailed}, "failed"},
		{"a stalled Rollout", sluicev1.RolloutStatus{Phase: sluicev1.PhaseInitialized,
			Conditions: []metav1.Condition{cond(sluicev1.ConditionStalled, "no target")}}, "stalled: no target"},
		{"a closed gate", sluicev1.RolloutStatus{Phase: sluicev1.PhaseWaitingPromotion, CurrentStepIndex: 1,
			Conditions: []metav1.Condition{cond(sluicev1.ConditionGate, "approve answered closed")}}, "waiting at a gate: approve answered closed"},
		{"paused by an action", sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, Paused: true}, "paused"},
		{"at a manual pause", sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CurrentStepIndex: 1}, "waiting at a pause"},
		{"at a weight step", sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CurrentStepIndex: 0}, ""},
		{"waiting for the canary before the pause", sluicev1.RolloutStatus{Phase: sluicev1.PhaseWaiting, CurrentStepIndex: 1}, ""},
		{"succeeded", sluicev1.RolloutStatus{Phase: sluicev1.PhaseSucceeded, CurrentStepIndex: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := rollout(tc.st, 10, 0, 50)
			got := attention(ro, steps.Plan(&ro.Spec))
			if (tc.want == "") != (got == "") || !strings.HasPrefix(got, tc.want) {
				t.Errorf("attention = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrafficHistoryKeepsOnlyChanges(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var h []trafficPoint
	for i, p := range []struct {
		canary int32
		phase  string
	}{{10, "Progressing"}, {10, "Progressing"}, {20, "Progressing"}, {20, "WaitingPromotion"}, {0, "Succeeded"}} {
		h = appendPoint(h, trafficPoint{T: t0.Add(time.Duration(i) * time.Second), Canary: p.canary, Phase: p.phase})
	}
	if len(h) != 4 || h[1].Canary != 20 || h[1].T != t0.Add(2*time.Second) {
		t.Errorf("history %+v, want 4 points, the second at 20%% from t0+2s", h)
	}
	for i := 0; i < maxHistory+10; i++ {
		h = appendPoint(h, trafficPoint{Canary: int32(i % 2)})
	}
	if len(h) != maxHistory {
		t.Errorf("history holds %d points, want at most %d", len(h), maxHistory)
	}
}

func TestEventsOfTheCurrentReleaseInOrder(t *testing.T) {
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	ro := rollout(sluicev1.RolloutStatus{RunStartedAt: &metav1.Time{Time: start}}, 10)
	ev := func(uid types.UID, at time.Duration, reason string) *eventsv1.Event {
		return &eventsv1.Event{EventTime: metav1.NewMicroTime(start.Add(at)), Reason: reason,
			Regarding: corev1.ObjectReference{Kind: "Rollout", Name: "podinfo", UID: uid}}
	}
	got := currentRelease(ro, []*eventsv1.Event{
		ev("uid-1", 2*time.Minute, "Promoted"),
		ev("uid-1", -time.Hour, "LastRelease"),
		ev("uid-0", time.Minute, "OtherRollout"),
		ev("uid-1", -2*time.Second, "NewRevision"),
		ev("uid-1", time.Minute, "StepDone"),
	})
	var reasons []string
	for _, e := range got {
		reasons = append(reasons, e.Reason)
	}
	if strings.Join(reasons, ",") != "NewRevision,StepDone,Promoted" {
		t.Errorf("events %v, want this run's, oldest first", reasons)
	}
}

func TestTheViewShowsPlanMetricsAndGate(t *testing.T) {
	now := metav1.Now()
	ro := rollout(sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CurrentStepIndex: 1, CanaryWeight: 20,
		Conditions: []metav1.Condition{cond(sluicev1.ConditionGate, "approve answered closed")},
		Metrics:    []sluicev1.MetricStatus{{Name: "latency", Value: "731", Verdict: "Fail", CheckedAt: &now}, {Name: "extra", Value: "1"}}},
		10, 20, 0)
	ro.Spec.Analysis = &sluicev1.Analysis{
		Metrics:  []sluicev1.MetricCheck{{Name: "latency", ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(500.0)}}, {Name: "errors"}},
		Webhooks: []sluicev1.Webhook{{Name: "approve", Type: sluicev1.HookConfirmPromotion}, {Name: "load", Type: sluicev1.HookRollout}},
	}
	v := buildView(ro, nil, nil, map[string][]string{"latency": {"420", "731"}})
	var states []string
	for _, p := range v.Plan {
		states = append(states, string(p.State))
	}
	if strings.Join(states, ",") != "done,current,pending" {
		t.Errorf("plan states %v", states)
	}
	if len(v.Metrics) != 3 || v.Metrics[0].Name != "latency" || *v.Metrics[0].Max != 500 || v.Metrics[0].Verdict != "Fail" ||
		strings.Join(v.Metrics[0].Recent, ",") != "420,731" || v.Metrics[1].Name != "errors" || v.Metrics[1].Value != "" || v.Metrics[2].Name != "extra" {
		t.Errorf("metrics %+v", v.Metrics)
	}
	if !v.Webhooks[0].Gate || v.Webhooks[1].Gate || v.GateClosed != "approve answered closed" {
		t.Errorf("webhooks %+v, gate %q", v.Webhooks, v.GateClosed)
	}
	if v.HoldEndsAt != nil {
		t.Errorf("hold ends at %v before the step's hold started", v.HoldEndsAt)
	}

	// Once the router holds the weight, the step's checks run an interval later.
	ro.Status.StepStartedAt = &metav1.Time{Time: now.Add(-20 * time.Second)}
	v = buildView(ro, nil, nil, nil)
	if want := now.Add(40 * time.Second); v.HoldEndsAt == nil || !v.HoldEndsAt.Equal(want) || !v.HoldChecks {
		t.Errorf("hold ends at %v (checks %v), want %v with checks", v.HoldEndsAt, v.HoldChecks, want)
	}
}

func TestAPendingActionIsShownUntilTheStatusRecordsItCarriedOut(t *testing.T) {
	asked := sluicev1.ActionRecord{Action: sluicev1.ActionPromote, By: "alice", ID: "a1"}
	for _, tc := range []struct {
		name string
		last *sluicev1.ActionRecord
		want string
	}{
		{"not carried out yet", nil, "promote"},
		{"an earlier request carried out", &sluicev1.ActionRecord{Action: sluicev1.ActionPromote, By: "alice", ID: "a0"}, "promote"},
		{"this request carried out, its removal to come", &asked, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := rollout(sluicev1.RolloutStatus{Phase: sluicev1.PhaseWaitingPromotion, LastAction: tc.last}, 10, 0)
			ro.Annotations = map[string]string{sluicev1.ActionAnnotation: string(asked.Action),
				sluicev1.ActionByAnnotation: asked.By, sluicev1.ActionIDAnnotation: asked.ID}
			v := buildView(ro, nil, nil, nil)
			if v.PendingAction != tc.want || (tc.want != "" && v.PendingBy != "alice") {
				t.Errorf("pending %q by %q, want %q", v.PendingAction, v.PendingBy, tc.want)
			}
		})
	}
}

func TestACompareMetricCarriesThePrimaryEstimateAndP(t *testing.T) {
	ro := rollout(sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, Metrics: []sluicev1.MetricStatus{{Name: "latency",
		Value: "240.8", PrimaryValue: "192.1", Estimate: "+22.1%", PValue: "1.45e-11", Verdict: "Fail"}}}, 10, 20, 0)
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{{Name: "latency",
		Compare: &sluicev1.Compare{Direction: sluicev1.CompareIncrease, Tolerance: "10%"}}}}
	m := buildView(ro, nil, nil, nil).Metrics[0]
	if m.Compare != "<= +10% vs primary" || m.Value != "240.8" || m.PrimaryValue != "192.1" || m.Estimate != "+22.1%" || m.PValue != "1.45e-11" {
		t.Errorf("metric %+v, want the canary against the primary with the rule, estimate and p", m)
	}
}

func TestAMetricCarriesTheRequestsItNeedsToBeJudged(t *testing.T) {
	ro := rollout(sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing}, 10, 20, 0)
	ro.Spec.Analysis = &sluicev1.Analysis{Metrics: []sluicev1.MetricCheck{
		{Name: sluicev1.MetricRequestSuccessRate, ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(99.0)}, MinRequests: ptr.To[int64](250)},
		{Name: sluicev1.MetricRequestDuration, ThresholdRange: &sluicev1.ThresholdRange{Max: ptr.To(500.0)}},
	}}
	ms := buildView(ro, nil, nil, nil).Metrics
	if ms[0].MinRequests != "on 250+ requests" || ms[1].MinRequests != "" {
		t.Errorf("minRequests shown %q and %q, want \"on 250+ requests\" and nothing", ms[0].MinRequests, ms[1].MinRequests)
	}
}

func TestASlowTabIsDroppedAndOthersStillHear(t *testing.T) {
	s := newStore(time.Now)
	_, slow := s.subscribe()
	first, fast := s.subscribe()
	var snap snapshot
	if err := json.Unmarshal(first.data, &snap); err != nil || first.event != "snapshot" || len(snap.Rollouts) != 0 {
		t.Fatalf("first message %s %s (%v)", first.event, first.data, err)
	}
	for i := 0; i <= subscriberBuffer; i++ {
		s.setRollout(rollout(sluicev1.RolloutStatus{CanaryWeight: int32(i)}, 10))
		<-fast.ch
	}
	n := 0
	for range slow.ch {
		n++
	}
	if n != subscriberBuffer {
		t.Errorf("the slow tab got %d messages before it was dropped, want %d", n, subscriberBuffer)
	}
	s.unsubscribe(slow) // dropped already: no panic
	s.deleteRollout("test", "podinfo")
	if m := <-fast.ch; m.event != "deleted" {
		t.Errorf("fast tab got %q, want deleted", m.event)
	}
}
