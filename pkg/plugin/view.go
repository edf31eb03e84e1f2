package plugin

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/plugin/describe"
	"github.com/sluice-dev/sluice/pkg/steps"
)

// maxEvents is how many of the last events `get` shows.
const maxEvents = 8

// view is what `get rollout` shows: the Rollout and its last events.
type view struct {
	ro     *sluicev1.Rollout
	events []eventsv1.Event
	now    time.Time
	// budgets are the PodDisruptionBudgets over the target's pods, shown
	// when budgetsKnown.
	budgets      []string
	budgetsKnown bool
}

// render writes the view, section by section, fitted to s.width.
func (v *view) render(w io.Writer, s style) {
	v.header(w, s)
	v.traffic(w, s)
	v.steps(w, s)
	v.metrics(w, s)
	v.webhooks(w, s)
	v.conditions(w, s)
	v.recentEvents(w, s)
}

// field prints "Label:    value", the value cut to the width.
func field(w io.Writer, s style, label, value, color string) {
	const labelWidth = 12
	fmt.Fprintf(w, "%-*s%s\n", labelWidth, label+":", s.paint(color, truncate(value, s.width-labelWidth)))
}

func section(w io.Writer, s style, title string) {
	fmt.Fprintf(w, "\n%s\n", s.paint(bold, title))
}

func (v *view) header(w io.Writer, s style) {
	ro, st := v.ro, v.ro.Status
	field(w, s, "Rollout", ro.Namespace+"/"+ro.Name, bold)
	field(w, s, "Target", ro.Spec.TargetRef.Kind+"/"+ro.Spec.TargetRef.Name, "")
	field(w, s, "Strategy", describe.StrategyName(&ro.Spec), "")
	phase := string(st.Phase)
	if phase == "" {
		phase = "(not reconciled yet)"
	}
	extra := []string{}
	if st.StepProgress != "" {
		extra = append(extra, "step "+st.StepProgress)
	}
	if st.FailedChecks > 0 {
		extra = append(extra, fmt.Sprintf("failed checks %d of %d allowed", st.FailedChecks, steps.Threshold(&ro.Spec)))
	}
	if ro.Spec.Suspend {
		extra = append(extra, "suspended by spec")
	}
	if st.Paused {
		extra = append(extra, "paused")
	}
	line := s.paint(phaseColor(string(st.Phase)), phase)
	if len(extra) > 0 {
		line += "  " + truncate(strings.Join(extra, ", "), s.width-14-len(phase))
	}
	fmt.Fprintf(w, "%-12s%s\n", "Phase:", line)
	if st.Message != "" {
		field(w, s, "Message", st.Message, "")
	}
	if a := sluicev1.PendingAction(ro.Annotations, st.LastAction); a != nil {
		field(w, s, "Pending", fmt.Sprintf("%s (asked by %s)", a.Action, orDash(a.By)), cyan)
	}
}

func (v *view) traffic(w io.Writer, s style) {
	st := v.ro.Status
	section(w, s, "Traffic")
	canary := st.CanaryTraffic()
	primary := 100 - canary
	fmt.Fprintf(w, "  primary  %4d%%  %s  revision %s\n", primary, bar(primary, 20, s, green), orDash(st.StableRevision))
	fmt.Fprintf(w, "  canary   %4d%%  %s  revision %s\n", canary, bar(canary, 20, s, yellow), orDash(st.CanaryRevision))
	if st.CanaryShareHeld {
		fmt.Fprintf(w, "  the canary's %d%% is held on the primary: it has no available pod\n", st.CanaryWeight)
	}
	v.budgetLine(w, s)
	if bg := v.ro.Spec.Strategy.BlueGreen; bg != nil && bg.Mirror {
		pct := int32(100)
		if bg.MirrorPercent != nil {
			pct = *bg.MirrorPercent
		}
		fmt.Fprintf(w, "  mirror   %4d%% of requests copied to the canary during the run\n", pct)
	}
	if ab := v.ro.Spec.Strategy.ABTesting; ab != nil {
		fmt.Fprintf(w, "  requests matching %d rule(s) go to the canary during the run\n", len(ab.Match))
	}
	if st.FailedRevision != "" {
		fmt.Fprintf(w, "  %s\n", truncate("failed revision "+st.FailedRevision+" (not released again until it changes or retry)", s.width-2))
	}
}

// budgetLine says which PodDisruptionBudgets guard the pods that serve, or
// warns that none does: then a node drain may evict all of the primary's
// or the canary's pods at once, and no router can keep those requests
// served.
func (v *view) budgetLine(w io.Writer, s style) {
	switch {
	case !v.budgetsKnown:
	case len(v.budgets) == 0:
		fmt.Fprintf(w, "  %s\n", s.paint(yellow, truncate("no PodDisruptionBudget: a drain may evict all pods at once", s.width-2)))
	default:
		fmt.Fprintf(w, "  %s\n", truncate("PodDisruptionBudget "+strings.Join(v.budgets, ", ")+" (copied over the primary)", s.width-2))
	}
}

// bar draws a percentage as a bar of n cells.
func bar(pct int32, n int, s style, color string) string {
	full := int(pct) * n / 100
	return "[" + s.paint(color, strings.Repeat("#", full)) + strings.Repeat(".", n-full) + "]"
}

// running reports whether a phase is a release under way.
func running(p sluicev1.Phase) bool { return steps.Running(p) }

// weightText is the canary's weight as a list shows it: "20%", or "0% (20%
// held)" while its share is held on the primary.
func weightText(st *sluicev1.RolloutStatus) string {
	if st.CanaryShareHeld {
		return fmt.Sprintf("0%% (%d%% held)", st.CanaryWeight)
	}
	return strconv.Itoa(int(st.CanaryWeight)) + "%"
}

// stepMark is the marker of step i: done, current, or still to come.
func stepMark(st *sluicev1.RolloutStatus, i int) string {
	switch steps.StateOf(st, i) {
	case steps.StateDone:
		return "[x]"
	case steps.StateFailed:
		return "[!]"
	case steps.StateCurrent:
		return "[>]"
	}
	return "[ ]"
}

func (v *view) steps(w io.Writer, s style) {
	spec, st := &v.ro.Spec, &v.ro.Status
	plan := steps.Plan(spec)
	section(w, s, fmt.Sprintf("Steps (%d)", len(plan)))
	if len(plan) == 0 {
		fmt.Fprintln(w, "  none: skipAnalysis promotes as soon as the canary is ready")
		return
	}
	for i, p := range plan {
		mark := stepMark(st, i)
		text := truncate(steps.Describe(spec, p, i), s.width-12)
		color := ""
		switch mark {
		case "[>]":
			color = yellow
			suffix := "  <- current"
			if ends, check, ok := steps.HoldEnds(spec, st); ok {
				suffix += ", " + holdLeft(ends, check, v.now)
			}
			text = truncate(text, s.width-10-len(suffix)) + suffix
		case "[x]":
			color = dim
		case "[!]":
			color = red
		}
		fmt.Fprintf(w, "  %s %s\n", s.paint(color, fmt.Sprintf("%s %2d", mark, i+1)), s.paint(color, text))
	}
}

// holdLeft says when the current step moves on: "checks in 12s", "ends in
// 4m" (a timed pause), or "checks due" once the time has come and the
// controller is about to act.
func holdLeft(ends time.Time, check bool, now time.Time) string {
	what := "ends"
	if check {
		what = "checks"
	}
	if !now.Before(ends) {
		return what + " due"
	}
	return what + " in " + duration.HumanDuration(ends.Sub(now))
}

func (v *view) metrics(w io.Writer, s style) {
	var checks []sluicev1.MetricCheck
	if v.ro.Spec.Analysis != nil {
		checks = v.ro.Spec.Analysis.Metrics
	}
	results := map[string]sluicev1.MetricStatus{}
	for _, m := range v.ro.Status.Metrics {
		results[m.Name] = m
	}
	if len(checks) == 0 && len(results) == 0 {
		return
	}
	section(w, s, "Metrics")
	t := &table{indent: "  ", header: []string{"METRIC", "VALUE", "RANGE", "VERDICT", "CHECKED", "MESSAGE"}}
	seen := map[string]bool{}
	row := func(name, rng string) {
		seen[name] = true
		r, ok := results[name]
		if !ok {
			t.add(plain(name, "-", rng, "not checked yet", "-", "")...)
			return
		}
		checked := "-"
		if r.CheckedAt != nil {
			checked = age(*r.CheckedAt, v.now) + " ago"
		}
		t.add(cell{text: name}, cell{text: formatValue(r)}, cell{text: rng},
			cell{text: orDash(r.Verdict), color: verdictColor(r.Verdict)}, cell{text: checked}, cell{text: r.Message})
	}
	for _, c := range checks {
		row(c.Name, formatCheck(c))
	}
	for _, m := range v.ro.Status.Metrics {
		if !seen[m.Name] {
			row(m.Name, "-")
		}
	}
	t.write(w, s)
}

// formatValue shows a check's last value; for a compare check the canary
// against the primary with the estimate and p: "240 vs primary 200
// (+20.0%, p=0.0001)".
func formatValue(r sluicev1.MetricStatus) string {
	if r.PrimaryValue == "" && r.Estimate == "" {
		return orDash(r.Value)
	}
	out := orDash(r.Value) + " vs primary " + orDash(r.PrimaryValue)
	if r.Estimate != "" {
		out += " (" + r.Estimate + ", p=" + orDash(r.PValue) + ")"
	}
	return out
}

// formatCheck shows what a check passes: its threshold range, for a
// compare check how much worse than the primary the canary may be, and
// the requests it needs to be judged: "<= 500, <= +10% vs primary",
// ">= 99, on 100+ requests".
func formatCheck(c sluicev1.MetricCheck) string {
	var out string
	if r := formatRange(c.ThresholdRange); r != "-" {
		out = r
	}
	for _, rule := range []string{describe.CompareRule(c.Compare), describe.MinRequestsRule(c.MinRequests)} {
		switch {
		case rule == "":
		case out == "":
			out = rule
		default:
			out += ", " + rule
		}
	}
	if out == "" {
		return "-"
	}
	return out
}

// formatRange shows a threshold range: "99..100", ">= 99", "<= 500".
func formatRange(r *sluicev1.ThresholdRange) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	switch {
	case r == nil:
		return "-"
	case r.Min != nil && r.Max != nil:
		return f(*r.Min) + ".." + f(*r.Max)
	case r.Min != nil:
		return ">= " + f(*r.Min)
	case r.Max != nil:
		return "<= " + f(*r.Max)
	}
	return "-"
}

func (v *view) webhooks(w io.Writer, s style) {
	var hooks []sluicev1.Webhook
	if v.ro.Spec.Analysis != nil {
		hooks = v.ro.Spec.Analysis.Webhooks
	}
	gate := meta.FindStatusCondition(v.ro.Status.Conditions, sluicev1.ConditionGate)
	if len(hooks) == 0 && gate == nil {
		return
	}
	section(w, s, "Webhooks")
	gates := 0
	if len(hooks) > 0 {
		t := &table{indent: "  ", header: []string{"NAME", "TYPE", "URL"}}
		for _, h := range hooks {
			if describe.IsGate(h.Type) {
				gates++
			}
			t.add(plain(h.Name, string(h.Type), h.URL)...)
		}
		t.write(w, s)
	}
	switch {
	case gate != nil && gate.Status == metav1.ConditionTrue:
		fmt.Fprintf(w, "  Gate: %s\n", s.paint(red, truncate("closed: "+gate.Message, s.width-8)))
	case gates > 0:
		fmt.Fprintf(w, "  Gate: %s\n", s.paint(green, "open"))
	}
}

func (v *view) conditions(w io.Writer, s style) {
	if len(v.ro.Status.Conditions) == 0 {
		return
	}
	section(w, s, "Conditions")
	t := &table{indent: "  ", header: []string{"TYPE", "STATUS", "REASON", "AGE", "MESSAGE"}}
	for _, c := range v.ro.Status.Conditions {
		color := ""
		switch {
		case c.Type == sluicev1.ConditionReady && c.Status == metav1.ConditionTrue:
			color = green
		case c.Type == sluicev1.ConditionStalled && c.Status == metav1.ConditionTrue,
			c.Type == sluicev1.ConditionGate && c.Status == metav1.ConditionTrue:
			color = red
		}
		t.add(cell{text: c.Type}, cell{text: string(c.Status), color: color}, cell{text: c.Reason},
			cell{text: age(c.LastTransitionTime, v.now)}, cell{text: c.Message})
	}
	t.write(w, s)
}

func (v *view) recentEvents(w io.Writer, s style) {
	section(w, s, "Events")
	if len(v.events) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	evs := v.events
	if len(evs) > maxEvents {
		evs = evs[len(evs)-maxEvents:]
	}
	t := &table{indent: "  ", header: []string{"AGE", "TYPE", "REASON", "MESSAGE"}}
	for i := range evs {
		e := &evs[i]
		color := ""
		if e.Type == "Warning" {
			color = yellow
		}
		t.add(cell{text: age(metav1.NewTime(describe.EventTime(e)), v.now)}, cell{text: e.Type, color: color},
			cell{text: e.Reason}, cell{text: e.Note})
	}
	t.write(w, s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
