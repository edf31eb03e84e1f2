package plugin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// progressing puts a canary at step 2 of 4 with 20% of traffic.
func progressing(st *sluicev1.RolloutStatus) {
	st.Phase = sluicev1.PhaseProgressing
	st.CanaryWeight = 20
	st.CurrentStepIndex = 1
	st.StepProgress = "2/4"
	st.FailedChecks = 1
	st.StableRevision = "5d8f9c"
	st.CanaryRevision = "7c9a1e"
	st.Message = "step 2/4: canary at 20%, holding for the analysis interval"
	st.Conditions = []metav1.Condition{
		condition(sluicev1.ConditionReady, metav1.ConditionFalse, "Progressing", "release under way"),
		condition(sluicev1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "release under way"),
		condition(sluicev1.ConditionGate, metav1.ConditionTrue, "GateClosed", "confirm-promotion gate approve answered closed"),
	}
	now := metav1.Now()
	st.StepStartedAt = &metav1.Time{Time: now.Add(-20 * time.Second)}
	st.Metrics = []sluicev1.MetricStatus{
		{Name: sluicev1.MetricRequestSuccessRate, Value: "99.52", Verdict: "Pass", CheckedAt: &now},
		{Name: sluicev1.MetricRequestDuration, Value: "731", Verdict: "Fail", Message: "731 is above 500", CheckedAt: &now},
	}
}

func succeeded(st *sluicev1.RolloutStatus) {
	st.Phase = sluicev1.PhaseSucceeded
	st.CanaryWeight = 0
	st.StepProgress = ""
	st.StableRevision = "7c9a1e"
	st.CanaryRevision = ""
	st.Message = "revision 7c9a1e promoted"
	st.Conditions = []metav1.Condition{condition(sluicev1.ConditionReady, metav1.ConditionTrue, "Succeeded", "revision 7c9a1e promoted")}
}

func failed(st *sluicev1.RolloutStatus) {
	st.Phase = sluicev1.PhaseFailed
	st.CanaryWeight = 0
	st.StepProgress = ""
	st.FailedRevision = "7c9a1e"
	st.Message = "rolled back: 5 failed checks"
	st.Conditions = []metav1.Condition{
		condition(sluicev1.ConditionReady, metav1.ConditionFalse, "RolledBack", "rolled back: 5 failed checks"),
		condition(sluicev1.ConditionStalled, metav1.ConditionTrue, "RolledBack", "rolled back: 5 failed checks"),
	}
}

// podinfo is a canary Rollout at step 2/4 with two metrics, a gate and events.
func podinfo(t *testing.T, ns string) *sluicev1.Rollout {
	t.Helper()
	ro := createRollout(t, ns, "podinfo", canarySteps(10, 20, 0, 50),
		metric(sluicev1.MetricRequestSuccessRate, ptr.To(99.0), nil),
		metric(sluicev1.MetricRequestDuration, nil, ptr.To(500.0)),
		webhook("approve", sluicev1.HookConfirmPromotion),
		webhook("load", sluicev1.HookRollout))
	setStatus(t, ro, progressing)
	recordEvent(t, ro, "Normal", "NewRevision", "new revision 7c9a1e: starting the release")
	recordEvent(t, ro, "Warning", "CheckFailed", "request-duration 731 is above 500")
	return ro
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }

// lineWith is the first line of out that contains every part, or "".
func lineWith(out string, parts ...string) string {
	for _, l := range lines(out) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
}

func assertFits80Columns(t *testing.T, out string) {
	t.Helper()
	for _, l := range lines(out) {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line of %d columns does not fit 80:\n%s", n, l)
		}
	}
}

func TestListShowsEachRolloutsPhaseWeightStepAndMessage(t *testing.T) {
	ns := newNamespace(t)
	podinfo(t, ns)
	done := createRollout(t, ns, "frontend")
	setStatus(t, done, succeeded)

	r := plugin(t, "list", "-n", ns)
	mustSucceed(t, r)
	out := r.stdout
	for _, col := range []string{"NAME", "PHASE", "WEIGHT", "STEP", "FAILED", "AGE", "MESSAGE"} {
		if !strings.Contains(lines(out)[0], col) {
			t.Errorf("header %q lacks column %s", lines(out)[0], col)
		}
	}
	if strings.Contains(out, "NAMESPACE") {
		t.Errorf("namespace column shown without -A:\n%s", out)
	}
	if lineWith(out, "podinfo", "Progressing", "20%", "2/4", "step 2/4: canary at 20%") == "" {
		t.Errorf("no podinfo line with phase, weight, step and message:\n%s", out)
	}
	if lineWith(out, "frontend", "Succeeded", "0%", "revision 7c9a1e promoted") == "" {
		t.Errorf("no frontend line with its phase:\n%s", out)
	}
	assertFits80Columns(t, out)
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes written to a non-terminal:\n%q", out)
	}
}

func TestListAllNamespacesShowsTheNamespaceColumn(t *testing.T) {
	ns1, ns2 := newNamespace(t), newNamespace(t)
	createRollout(t, ns1, "one")
	createRollout(t, ns2, "two")

	r := plugin(t, "list", "-A")
	mustSucceed(t, r)
	if !strings.HasPrefix(lines(r.stdout)[0], "NAMESPACE") {
		t.Errorf("header does not start with NAMESPACE: %q", lines(r.stdout)[0])
	}
	if lineWith(r.stdout, ns1, "one") == "" || lineWith(r.stdout, ns2, "two") == "" {
		t.Errorf("rollouts of both namespaces not listed:\n%s", r.stdout)
	}
}

func TestListOutputJSONAndYAMLRoundTrip(t *testing.T) {
	ns := newNamespace(t)
	podinfo(t, ns)
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			r := plugin(t, "list", "-n", ns, "-o", format)
			mustSucceed(t, r)
			var list sluicev1.RolloutList
			if err := yaml.Unmarshal([]byte(r.stdout), &list); err != nil {
				t.Fatalf("output does not decode as a list of Rollouts: %v\n%s", err, r.stdout)
			}
			if len(list.Items) != 1 {
				t.Fatalf("want 1 item, got %d", len(list.Items))
			}
			got := list.Items[0]
			if got.Name != "podinfo" || got.Status.Phase != sluicev1.PhaseProgressing || got.Status.CanaryWeight != 20 ||
				len(got.Spec.Strategy.Canary.Steps) != 4 || len(got.Status.Metrics) != 2 {
				t.Errorf("round-tripped Rollout differs: %+v", got)
			}
		})
	}
}

func TestGetRolloutShowsPhaseStepsTrafficMetricsGateConditionsAndEvents(t *testing.T) {
	ns := newNamespace(t)
	podinfo(t, ns)

	r := plugin(t, "get", "rollout", "podinfo", "-n", ns)
	mustSucceed(t, r)
	out := r.stdout
	t.Log("\n" + out)

	for _, want := range [][]string{
		{"Rollout:", ns + "/podinfo"},
		{"Phase:", "Progressing", "step 2/4", "failed checks 1 of 5 allowed"},
		{"primary", "80%", "revision 5d8f9c"},
		{"canary", "20%", "revision 7c9a1e"},
		{"Steps (4)"},
		{"[x]  1", "set weight 10%"},
		{"[>]  2", "set weight 20%", "<- current, checks in "},
		{"[ ]  3", "pause at 20% until promoted"},
		{"[ ]  4", "set weight 50%"},
		{"request-success-rate", "99.52", ">= 99", "Pass"},
		{"request-duration", "731", "<= 500", "Fail", "731 is above 500"},
		{"approve", "confirm-promotion", "http://loadtester.test/gate/approve"},
		{"Gate:", "closed: confirm-promotion gate approve answered closed"},
		{"GateClosed", "True", "GateClosed"},
		{"Reconciling", "True", "Progressing"},
		{"Normal", "NewRevision", "new revision 7c9a1e: starting the release"},
		{"Warning", "CheckFailed", "request-duration 731 is above 500"},
	} {
		if lineWith(out, want...) == "" {
			t.Errorf("no line with %q", want)
		}
	}
	assertFits80Columns(t, out)
}

// A team that never wrote a PodDisruptionBudget learns it from `get`: a
// node drain may then evict all of the primary's pods at once, and no
// router keeps those requests served. Once a budget selects the target's
// pods (Sluice copies it over the primary's), `get` names it; Sluice's own
// copies and budgets over other pods do not count.
func TestGetRolloutSaysWhetherADisruptionBudgetGuardsThePods(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	createDeployment(t, ns, "podinfo", map[string]string{"app": "podinfo", "tier": "web"})
	ro := createRollout(t, ns, "podinfo")
	setStatus(t, ro, succeeded)
	budget := func(name string, sel map[string]string, managed bool) {
		t.Helper()
		p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: sel}}}
		if managed {
			p.Labels = map[string]string{traffic.ManagedByLabel: traffic.ManagedByValue}
		}
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Sluice's copy over the primary's pods, and a budget of another app.
	budget("podinfo-pdb-primary", map[string]string{"app": "podinfo-primary"}, true)
	budget("backend", map[string]string{"app": "backend"}, false)

	r := plugin(t, "get", "rollout", "podinfo", "-n", ns)
	mustSucceed(t, r)
	t.Log("\n" + r.stdout)
	if lineWith(r.stdout, "no PodDisruptionBudget", "a drain may evict all pods at once") == "" {
		t.Error("no warning that no PodDisruptionBudget guards the pods")
	}
	assertFits80Columns(t, r.stdout)

	budget("podinfo-pdb", map[string]string{"tier": "web"}, false)
	r = plugin(t, "get", "rollout", "podinfo", "-n", ns)
	mustSucceed(t, r)
	t.Log("\n" + r.stdout)
	if lineWith(r.stdout, "PodDisruptionBudget podinfo-pdb (copied over the primary)") == "" {
		t.Error("the budget over the target's pods is not named")
	}
	if strings.Contains(r.stdout, "no PodDisruptionBudget") || strings.Contains(r.stdout, "backend") {
		t.Error("a warning, or another app's budget, shown beside the target's budget")
	}
}

// TestGetRolloutSaysNothingOfBudgetsItCannotRead: without the target (or
// the right to read it and the budgets) `get` guesses nothing.
func TestGetRolloutSaysNothingOfBudgetsItCannotRead(t *testing.T) {
	ns := newNamespace(t)
	podinfo(t, ns)
	r := plugin(t, "get", "rollout", "podinfo", "-n", ns)
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "PodDisruptionBudget") {
		t.Errorf("a line about budgets with no target to judge them by:\n%s", r.stdout)
	}
}

func TestGetRolloutShowsEveryStepDoneOnceSucceeded(t *testing.T) {
	ns := newNamespace(t)
	ro := createRollout(t, ns, "frontend", webhook("approve", sluicev1.HookConfirmRollout))
	setStatus(t, ro, succeeded)

	r := plugin(t, "get", "rollout", "frontend", "-n", ns)
	mustSucceed(t, r)
	for _, want := range [][]string{
		{"Strategy:", "blue/green"},
		{"[x]  1", "iteration 1"},
		{"[x]  2", "iteration 2"},
		{"Gate:", "open"},
		{"Events"},
		{"none"},
	} {
		if lineWith(r.stdout, want...) == "" {
			t.Errorf("no line with %q:\n%s", want, r.stdout)
		}
	}
}

func TestGetRolloutOutputJSONRoundTrips(t *testing.T) {
	ns := newNamespace(t)
	ro := podinfo(t, ns)

	r := plugin(t, "get", "rollout", "podinfo", "-n", ns, "-o", "json")
	mustSucceed(t, r)
	var got sluicev1.Rollout
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not a Rollout: %v\n%s", err, r.stdout)
	}
	if got.UID != ro.UID || got.Kind != "Rollout" || got.Status.StepProgress != "2/4" ||
		got.Spec.Analysis.Metrics[1].ThresholdRange.Max == nil || *got.Spec.Analysis.Metrics[1].ThresholdRange.Max != 500 {
		t.Errorf("round-tripped Rollout differs: %+v", got)
	}
}

func TestGetRolloutNotFoundSaysSo(t *testing.T) {
	ns := newNamespace(t)
	r := plugin(t, "get", "rollout", "nope", "-n", ns)
	if r.code != ExitFailed || !strings.Contains(r.stderr, `rollout "nope" not found in namespace "`+ns+`"`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// readUntil reads lines from r until one contains s; it fails the test if the
// output ends first.
func readUntil(t *testing.T, sc *bufio.Scanner, s string) {
	t.Helper()
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return
		}
	}
	t.Fatalf("output ended before a line with %q", s)
}

func TestGetRolloutWatchRedrawsWhenTheStatusChanges(t *testing.T) {
	ns := newNamespace(t)
	ro := podinfo(t, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, done := pluginAsync(ctx, "get", "rollout", "podinfo", "-n", ns, "--watch")
	sc := bufio.NewScanner(out)

	readUntil(t, sc, "<- current")
	setStatus(t, ro, func(st *sluicev1.RolloutStatus) {
		st.CurrentStepIndex = 2
		st.StepProgress = "3/4"
		st.Phase = sluicev1.PhaseWaitingPromotion
	})
	readUntil(t, sc, "WaitingPromotion")
	readUntil(t, sc, "[>]  3")
	cancel()
	discardRest(sc)
	if r := <-done; r.code != 0 {
		t.Errorf("watch ended with exit %d: %s", r.code, r.stderr)
	}
}

func TestActionsSetTheAnnotationsWithTheAuthenticatedUser(t *testing.T) {
	ns := newNamespace(t)
	ro := createRollout(t, ns, "podinfo")
	for _, tc := range []struct {
		args []string
		want sluicev1.Action
	}{
		{[]string{"promote"}, sluicev1.ActionPromote},
		{[]string{"promote", "--full"}, sluicev1.ActionPromoteFull},
		{[]string{"abort"}, sluicev1.ActionAbort},
		{[]string{"retry"}, sluicev1.ActionRetry},
		{[]string{"pause"}, sluicev1.ActionPause},
		{[]string{"resume"}, sluicev1.ActionResume},
	} {
		t.Run(string(tc.want), func(t *testing.T) {
			r := plugin(t, append(tc.args, "podinfo", "-n", ns)...)
			mustSucceed(t, r)
			if !strings.Contains(r.stdout, "rollout "+ns+"/podinfo: asked to "+string(tc.want)+" (as "+testAdmin+")") {
				t.Errorf("confirmation does not say what was asked: %q", r.stdout)
			}
			got := &sluicev1.Rollout{}
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ro), got); err != nil {
				t.Fatal(err)
			}
			if a := got.Annotations[sluicev1.ActionAnnotation]; a != string(tc.want) {
				t.Errorf("%s = %q, want %q", sluicev1.ActionAnnotation, a, tc.want)
			}
			if by := got.Annotations[sluicev1.ActionByAnnotation]; by != testAdmin {
				t.Errorf("%s = %q, want the authenticated user %q", sluicev1.ActionByAnnotation, by, testAdmin)
			}
			if got.Generation != ro.Generation {
				t.Errorf("the spec changed: generation %d, was %d", got.Generation, ro.Generation)
			}
		})
	}
}

func TestActionOnAPendingActionWarnsThatItReplacesIt(t *testing.T) {
	ns := newNamespace(t)
	createRollout(t, ns, "podinfo")
	mustSucceed(t, plugin(t, "pause", "podinfo", "-n", ns))
	r := plugin(t, "abort", "podinfo", "-n", ns)
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, `replacing the pending action "pause" (asked by `+testAdmin+")") {
		t.Errorf("no warning about the pending action: %q", r.stderr)
	}
}

// A request the controller carried out but whose annotations it has not
// removed yet (the removal failed and is retried) is done: the status
// records its id. It is neither shown as pending nor warned about as
// replaced by the next request.
func TestARequestCarriedOutIsNotShownAsPending(t *testing.T) {
	ns := newNamespace(t)
	ro := createRollout(t, ns, "podinfo")
	mustSucceed(t, plugin(t, "pause", "podinfo", "-n", ns))
	r := plugin(t, "get", "rollout", "podinfo", "-n", ns)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "pause (asked by "+testAdmin+")") {
		t.Fatalf("the request not carried out yet is not shown as pending:\n%s", r.stdout)
	}

	got := &sluicev1.Rollout{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ro), got); err != nil {
		t.Fatal(err)
	}
	done := sluicev1.PendingAction(got.Annotations, nil)
	if done == nil || done.ID == "" {
		t.Fatalf("the request has no id: %v", got.Annotations)
	}
	setStatus(t, ro, func(st *sluicev1.RolloutStatus) { st.Paused, st.LastAction = true, done })

	r = plugin(t, "get", "rollout", "podinfo", "-n", ns)
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "Pending") {
		t.Errorf("a request carried out is shown as pending:\n%s", r.stdout)
	}
	r = plugin(t, "resume", "podinfo", "-n", ns)
	mustSucceed(t, r)
	if strings.Contains(r.stderr, "replacing") {
		t.Errorf("asking after a request carried out warns of replacing it: %q", r.stderr)
	}
	r = plugin(t, "get", "rollout", "podinfo", "-n", ns)
	if !strings.Contains(r.stdout, "resume (asked by "+testAdmin+")") {
		t.Errorf("the next request is not shown as pending:\n%s", r.stdout)
	}
}

func TestActionOnAMissingRolloutFails(t *testing.T) {
	ns := newNamespace(t)
	r := plugin(t, "promote", "nope", "-n", ns)
	if r.code != ExitFailed || !strings.Contains(r.stderr, `rollout "nope" not found`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestStatusPrintsOneLineAndExitsOneOnlyOnFailure(t *testing.T) {
	ns := newNamespace(t)
	for _, tc := range []struct {
		name   string
		status func(*sluicev1.RolloutStatus)
		code   int
		want   []string
	}{
		{"progressing", progressing, 0, []string{"/progressing", "Progressing", "step 2/4, canary 20%, failed 1: step 2/4"}},
		{"succeeded", succeeded, 0, []string{"/succeeded", "Succeeded", "revision 7c9a1e promoted"}},
		{"failed", failed, 1, []string{"/failed", "Failed", "rolled back: 5 failed checks"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := createRollout(t, ns, tc.name)
			setStatus(t, ro, tc.status)
			r := plugin(t, "status", tc.name, "-n", ns)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			if len(lines(r.stdout)) != 1 || lineWith(r.stdout, tc.want...) == "" {
				t.Errorf("want one line with %q, got:\n%s", tc.want, r.stdout)
			}
			assertFits80Columns(t, r.stdout)
		})
	}
}

// waitFor starts `status --wait` on a progressing Rollout and returns once
// it has printed the Progressing line, so it is waiting.
func waitFor(t *testing.T, timeout string) (*sluicev1.Rollout, *bufio.Scanner, <-chan result) {
	t.Helper()
	ns := newNamespace(t)
	ro := createRollout(t, ns, "podinfo", canarySteps(10, 20, 0, 50))
	setStatus(t, ro, progressing)
	out, done := pluginAsync(context.Background(), "status", "podinfo", "-n", ns, "--wait", "--timeout", timeout)
	sc := bufio.NewScanner(out)
	readUntil(t, sc, "Progressing")
	return ro, sc, done
}

func TestStatusWaitExitsZeroWhenTheReleaseSucceeds(t *testing.T) {
	ro, sc, done := waitFor(t, "60s")
	setStatus(t, ro, func(st *sluicev1.RolloutStatus) {
		st.Phase = sluicev1.PhasePromoting
		st.StepProgress = "4/4"
		st.CurrentStepIndex = 3
		st.CanaryWeight = 50
	})
	readUntil(t, sc, "Promoting  step 4/4, canary 50%")
	setStatus(t, ro, succeeded)
	readUntil(t, sc, "Succeeded")
	readUntil(t, sc, "release succeeded")
	if r := <-done; r.code != ExitOK {
		t.Errorf("exit %d, want 0 (stderr %q)", r.code, r.stderr)
	}
}

func TestStatusWaitExitsOneWhenTheReleaseFails(t *testing.T) {
	ro, sc, done := waitFor(t, "60s")
	setStatus(t, ro, failed)
	readUntil(t, sc, "Failed")
	discardRest(sc)
	r := <-done
	if r.code != ExitFailed || !strings.Contains(r.stderr, "release failed: rolled back: 5 failed checks") {
		t.Errorf("exit %d, want 1; stderr %q", r.code, r.stderr)
	}
}

func TestStatusWaitExitsTwoOnTimeout(t *testing.T) {
	_, sc, done := waitFor(t, "1s")
	discardRest(sc)
	r := <-done
	if r.code != ExitTimeout || !strings.Contains(r.stderr, "timed out after 1s") || !strings.Contains(r.stderr, "phase Progressing") {
		t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
	}
}

func TestStatusWaitKeepsWaitingWhileTheControllerHasNotSeenTheSpec(t *testing.T) {
	ns := newNamespace(t)
	ro := createRollout(t, ns, "podinfo")
	setStatus(t, ro, func(st *sluicev1.RolloutStatus) {
		succeeded(st)
		st.ObservedGeneration = 0 // an older generation than the spec's 1
	})
	r := plugin(t, "status", "podinfo", "-n", ns, "--wait", "--timeout", "1s")
	if r.code != ExitTimeout {
		t.Errorf("exit %d, want 2: a Succeeded of an older spec is not this release's; stderr %q", r.code, r.stderr)
	}
}

// discardRest reads, in the background, what a command still prints, so it
// never blocks on its output.
func discardRest(sc *bufio.Scanner) {
	go func() {
		for sc.Scan() {
		}
	}()
}

func TestVersionPrintsTheVersion(t *testing.T) {
	var out strings.Builder
	code := Run(context.Background(), []string{"version"}, genericiooptions.IOStreams{Out: &out, ErrOut: io.Discard})
	if code != 0 || !strings.HasPrefix(out.String(), "kubectl-sluice ") {
		t.Errorf("exit %d, output %q", code, out.String())
	}
}

func TestStatusWaitIgnoresASuccessFromBeforeTheTargetChanged(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	d := createDeployment(t, ns, "podinfo", map[string]string{"app": "podinfo"})
	ro := createRollout(t, ns, "podinfo")
	// The last release succeeded at the target's generation 1 ...
	setStatus(t, ro, func(st *sluicev1.RolloutStatus) { succeeded(st); st.ObservedTargetGeneration = d.Generation })
	// ... and a CI job has just pushed a new image.
	d.Spec.Template.Spec.Containers[0].Image = "podinfo:2"
	if err := k8s.Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	if r := plugin(t, "status", "podinfo", "-n", ns, "--wait", "--timeout", "1s"); r.code != ExitTimeout {
		t.Fatalf("exit %d, want 2: the Succeeded is the previous release's; stderr %q", r.code, r.stderr)
	}
	// Once Sluice has seen the new generation, its phase is the outcome.
	setStatus(t, ro, func(st *sluicev1.RolloutStatus) { succeeded(st); st.ObservedTargetGeneration = d.Generation })
	if r := plugin(t, "status", "podinfo", "-n", ns, "--wait", "--timeout", "10s"); r.code != ExitOK {
		t.Errorf("exit %d, want 0; stderr %q", r.code, r.stderr)
	}
}

// createDeployment creates a Deployment of one container, image podinfo:1,
// whose pods carry podLabels.
func createDeployment(t *testing.T, ns, name string, podLabels map[string]string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: podLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "podinfo:1"}}}},
		},
	}
	if err := k8s.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	return d
}
