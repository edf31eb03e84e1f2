package dashboard

import (
	"sort"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/plugin/describe"
	"github.com/sluice-dev/sluice/pkg/steps"
)

// rolloutView is what the page shows of one Rollout, overview and detail
// alike; it is built from the Rollout, its events and its traffic history.
type rolloutView struct {
	Namespace      string          `json:"namespace"`
	Name           string          `json:"name"`
	Target         string          `json:"target"`
	Strategy       string          `json:"strategy"`
	Phase          string          `json:"phase"`
	Message        string          `json:"message,omitempty"`
	StepProgress   string          `json:"stepProgress,omitempty"`
	CanaryWeight   int32           `json:"canaryWeight"`
	FailedChecks   int32           `json:"failedChecks"`
	Threshold      int32           `json:"threshold"`
	StepStartedAt  *time.Time      `json:"stepStartedAt,omitempty"`
	HoldEndsAt     *time.Time      `json:"holdEndsAt,omitempty"` // when the current step moves on (steps.HoldEnds)
	HoldChecks     bool            `json:"holdChecks,omitempty"` // its checks run then; else a timed pause ends
	CreatedAt      time.Time       `json:"createdAt"`
	Attention      string          `json:"attention,omitempty"`
	Paused         bool            `json:"paused,omitempty"`
	Suspended      bool            `json:"suspended,omitempty"`
	PendingAction  string          `json:"pendingAction,omitempty"`
	PendingBy      string          `json:"pendingBy,omitempty"`
	StableRevision string          `json:"stableRevision,omitempty"`
	CanaryRevision string          `json:"canaryRevision,omitempty"`
	FailedRevision string          `json:"failedRevision,omitempty"`
	Plan           []stepView      `json:"plan"`
	Metrics        []metricView    `json:"metrics"`
	Webhooks       []hookView      `json:"webhooks"`
	GateClosed     string          `json:"gateClosed,omitempty"`
	Conditions     []conditionView `json:"conditions"`
	History        []trafficPoint  `json:"history"`
	Events         []eventView     `json:"events"`
}

type stepView struct {
	Text  string      `json:"text"`
	State steps.State `json:"state"`
}

type metricView struct {
	Name      string     `json:"name"`
	Value     string     `json:"value,omitempty"`
	Recent    []string   `json:"recent,omitempty"`
	Verdict   string     `json:"verdict,omitempty"`
	Message   string     `json:"message,omitempty"`
	Min       *float64   `json:"min,omitempty"`
	Max       *float64   `json:"max,omitempty"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"`
	// Compare is the rule of a compare check ("<= +10% vs primary"), and
	// PrimaryValue, Estimate and PValue its last result.
	Compare string `json:"compare,omitempty"`
	// MinRequests is what a check needs to be judged ("on 100+ requests").
	MinRequests  string `json:"minRequests,omitempty"`
	PrimaryValue string `json:"primaryValue,omitempty"`
	Estimate     string `json:"estimate,omitempty"`
	PValue       string `json:"pValue,omitempty"`
}

type hookView struct {
	Name string `json:"name"`
	Type string `json:"type"`
	URL  string `json:"url"`
	Gate bool   `json:"gate"`
}

type conditionView struct {
	Type    string    `json:"type"`
	Status  string    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
}

// trafficPoint is the traffic split from a time on, as the watch saw it.
type trafficPoint struct {
	T      time.Time `json:"t"`
	Canary int32     `json:"canary"`
	Phase  string    `json:"phase"`
}

type eventView struct {
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Reason string    `json:"reason"`
	Note   string    `json:"note"`
}

// buildView turns a Rollout, its events, its traffic history and its
// metrics' recent values (oldest first) into what the page shows.
func buildView(ro *sluicev1.Rollout, evs []*eventsv1.Event, history []trafficPoint, recent map[string][]string) rolloutView {
	st := &ro.Status
	plan := steps.Plan(&ro.Spec)
	v := rolloutView{
		Namespace: ro.Namespace, Name: ro.Name,
		Target:   ro.Spec.TargetRef.Kind + "/" + ro.Spec.TargetRef.Name,
		Strategy: describe.StrategyName(&ro.Spec),
		Phase:    string(st.Phase), Message: st.Message, StepProgress: st.StepProgress,
		CanaryWeight: st.CanaryTraffic(), FailedChecks: st.FailedChecks, Threshold: steps.Threshold(&ro.Spec),
		CreatedAt: ro.CreationTimestamp.Time, Attention: attention(ro, plan),
		Paused: st.Paused, Suspended: ro.Spec.Suspend,
		StableRevision: st.StableRevision, CanaryRevision: st.CanaryRevision, FailedRevision: st.FailedRevision,
		Plan: []stepView{}, Metrics: []metricView{}, Webhooks: []hookView{}, Conditions: []conditionView{},
		History: history, Events: currentRelease(ro, evs),
	}
	if v.Phase == "" {
		v.Phase = "Pending"
	}
	if a := sluicev1.PendingAction(ro.Annotations, st.LastAction); a != nil {
		v.PendingAction, v.PendingBy = string(a.Action), a.By
	}
	if st.StepStartedAt != nil {
		t := st.StepStartedAt.Time
		v.StepStartedAt = &t
	}
	if ends, check, ok := steps.HoldEnds(&ro.Spec, st); ok {
		v.HoldEndsAt, v.HoldChecks = &ends, check
	}
	for i, p := range plan {
		v.Plan = append(v.Plan, stepView{Text: steps.Describe(&ro.Spec, p, i), State: steps.StateOf(st, i)})
	}
	v.Metrics = metrics(ro, recent)
	if a := ro.Spec.Analysis; a != nil {
		for _, h := range a.Webhooks {
			v.Webhooks = append(v.Webhooks, hookView{Name: h.Name, Type: string(h.Type), URL: h.URL, Gate: describe.IsGate(h.Type)})
		}
	}
	if g := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionGate); g != nil && g.Status == metav1.ConditionTrue {
		v.GateClosed = g.Message
		if v.GateClosed == "" {
			v.GateClosed = g.Reason
		}
	}
	for _, c := range st.Conditions {
		v.Conditions = append(v.Conditions, conditionView{Type: c.Type, Status: string(c.Status), Reason: c.Reason,
			Message: c.Message, Since: c.LastTransitionTime.Time})
	}
	if v.History == nil {
		v.History = []trafficPoint{}
	}
	return v
}

// attention says why a Rollout needs a person, or "" when it does not:
// it failed, it is stalled, or it waits at a closed gate or a pause.
func attention(ro *sluicev1.Rollout, plan []steps.Step) string {
	st := &ro.Status
	if st.Phase == sluicev1.PhaseFailed {
		return "failed: rolled back, retry or fix the release"
	}
	if c := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		return "stalled: " + c.Message
	}
	if c := meta.FindStatusCondition(st.Conditions, sluicev1.ConditionGate); c != nil && c.Status == metav1.ConditionTrue {
		return "waiting at a gate: " + c.Message
	}
	if st.Paused {
		return "paused: resume to go on"
	}
	i := int(st.CurrentStepIndex)
	if i < len(plan) && plan[i].ManualPause && steps.StateOf(st, i) == steps.StateCurrent {
		return "waiting at a pause: promote to go on"
	}
	return ""
}

func metrics(ro *sluicev1.Rollout, recent map[string][]string) []metricView {
	results := map[string]sluicev1.MetricStatus{}
	for _, m := range ro.Status.Metrics {
		results[m.Name] = m
	}
	out := []metricView{}
	seen := map[string]bool{}
	add := func(name string, r *sluicev1.ThresholdRange, cmp *sluicev1.Compare, minRequests *int64) {
		seen[name] = true
		m := metricView{Name: name, Recent: recent[name], Compare: describe.CompareRule(cmp), MinRequests: describe.MinRequestsRule(minRequests)}
		if r != nil {
			m.Min, m.Max = r.Min, r.Max
		}
		if res, ok := results[name]; ok {
			m.Value, m.Verdict, m.Message = res.Value, res.Verdict, res.Message
			m.PrimaryValue, m.Estimate, m.PValue = res.PrimaryValue, res.Estimate, res.PValue
			if res.CheckedAt != nil {
				t := res.CheckedAt.Time
				m.CheckedAt = &t
			}
		}
		out = append(out, m)
	}
	if a := ro.Spec.Analysis; a != nil {
		for _, c := range a.Metrics {
			add(c.Name, c.ThresholdRange, c.Compare, c.MinRequests)
		}
	}
	for _, m := range ro.Status.Metrics {
		if !seen[m.Name] {
			add(m.Name, nil, nil, nil)
		}
	}
	return out
}

// currentRelease is the events about this Rollout (not an earlier one of
// the same name) since its current run started, oldest first.
func currentRelease(ro *sluicev1.Rollout, evs []*eventsv1.Event) []eventView {
	// Events recorded just before the run's start was written belong to it.
	const slack = 5 * time.Second
	var since time.Time
	if ro.Status.RunStartedAt != nil {
		since = ro.Status.RunStartedAt.Add(-slack)
	}
	out := []eventView{}
	for _, e := range evs {
		if e.Regarding.UID != "" && e.Regarding.UID != ro.UID {
			continue
		}
		t := describe.EventTime(e)
		if t.Before(since) {
			continue
		}
		out = append(out, eventView{Time: t, Type: e.Type, Reason: e.Reason, Note: e.Note})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if len(out) > maxEvents {
		out = out[len(out)-maxEvents:]
	}
	return out
}

// maxEvents is how many of a release's last events the page shows.
const maxEvents = 50
