package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// --- Rollout builders ------------------------------------------------------

type rolloutOpt func(*sluicev1.Rollout)

// rolloutIn builds a Rollout at generation 2 whose status the options set.
func rolloutIn(opts ...rolloutOpt) *sluicev1.Rollout {
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "shop", Generation: 2},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   sluicev1.ServiceSpec{Port: 9898},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}},
		},
		Status: sluicev1.RolloutStatus{ObservedGeneration: 2},
	}
	for _, o := range opts {
		o(ro)
	}
	return ro
}

func phase(p sluicev1.Phase) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Status.Phase = p }
}

func cond(kind string, s metav1.ConditionStatus, reason, msg string) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		ro.Status.Conditions = append(ro.Status.Conditions, metav1.Condition{
			Type: kind, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: ro.Generation, LastTransitionTime: metav1.Now(),
		})
	}
}

func observedGeneration(g int64) rolloutOpt {
	return func(ro *sluicev1.Rollout) { ro.Status.ObservedGeneration = g }
}

// The three states of the status contract (docs/how-it-works.md).
var (
	releasing = []rolloutOpt{phase(sluicev1.PhaseProgressing),
		cond("Ready", metav1.ConditionFalse, "Progressing", "release of 2.0 at step 1/2"),
		cond("Reconciling", metav1.ConditionTrue, "Progressing", "release of 2.0 at step 1/2")}
	succeeded = []rolloutOpt{phase(sluicev1.PhaseSucceeded),
		cond("Ready", metav1.ConditionTrue, "Succeeded", "2.0 promoted")}
	failed = []rolloutOpt{phase(sluicev1.PhaseFailed),
		cond("Ready", metav1.ConditionFalse, "Failed", "rolled back"),
		cond("Stalled", metav1.ConditionTrue, "ProgressDeadlineExceeded", "canary not ready within 60s; rolled back")}
)

// --- the readers -----------------------------------------------------------

func toUnstructured(t *testing.T, ro *sluicev1.Rollout) *unstructured.Unstructured {
	t.Helper()
	ro = ro.DeepCopy()
	ro.SetGroupVersionKind(sluicev1.GroupVersion.WithKind("Rollout"))
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ro)
	must(t, err)
	return &unstructured.Unstructured{Object: raw}
}

// argoHealth runs charts/sluice/argocd/health.lua as Argo CD does: the
// object as the global obj (from its JSON form), the script's return value
// as the health.
func argoHealth(t *testing.T, ro *sluicev1.Rollout) (healthStatus, message string) {
	t.Helper()
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, toUnstructured(t, ro).Object))
	if err := L.DoString(string(readFile(t, chartDir, "argocd", "health.lua"))); err != nil {
		t.Fatalf("health.lua: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, want a table", L.Get(-1).Type())
	}
	return lua.LVAsString(hs.RawGetString("status")), lua.LVAsString(hs.RawGetString("message"))
}

// toLua converts a JSON-like value to Lua: objects and arrays to tables.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		panic(fmt.Sprintf("toLua: unexpected %T", v))
	}
}

func kstatusOf(t *testing.T, ro *sluicev1.Rollout) status.Status {
	t.Helper()
	res, err := status.Compute(toUnstructured(t, ro))
	must(t, err)
	return res.Status
}

// expectHealth checks what kstatus and Argo CD's health check read.
func expectHealth(t *testing.T, ro *sluicev1.Rollout, wantK status.Status, wantArgo string) {
	t.Helper()
	if got := kstatusOf(t, ro); got != wantK {
		t.Errorf("kstatus = %s, want %s (phase %s, conditions %+v)", got, wantK, ro.Status.Phase, ro.Status.Conditions)
	}
	if got, msg := argoHealth(t, ro); got != wantArgo {
		t.Errorf("Argo CD health = %s (%s), want %s (phase %s, conditions %+v)", got, msg, wantArgo, ro.Status.Phase, ro.Status.Conditions)
	}
}

// --- tests -----------------------------------------------------------------

func TestGitOpsToolsReadTheThreeStatesOfARollout(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []rolloutOpt
		wantK status.Status
		argo  string
	}{
		{"a release in progress is InProgress and Progressing", releasing, status.InProgressStatus, "Progressing"},
		{"a succeeded release is Current and Healthy", succeeded, status.CurrentStatus, "Healthy"},
		{"an initialized Rollout is Current and Healthy",
			[]rolloutOpt{phase(sluicev1.PhaseInitialized), cond("Ready", metav1.ConditionTrue, "Initialized", "serving 1.0")},
			status.CurrentStatus, "Healthy"},
		{"a failed release is Failed and Degraded", failed, status.FailedStatus, "Degraded"},
		{"a Rollout needing a fix is Failed and Degraded",
			[]rolloutOpt{phase(sluicev1.PhaseInitializing), cond("Ready", metav1.ConditionFalse, "TargetNotFound", "Deployment podinfo not found"),
				cond("Stalled", metav1.ConditionTrue, "TargetNotFound", "Deployment podinfo not found")},
			status.FailedStatus, "Degraded"},
		{"a Ready Rollout whose new generation is not yet observed is InProgress and Progressing",
			append([]rolloutOpt{observedGeneration(1)}, succeeded...), status.InProgressStatus, "Progressing"},
		// kstatus cannot tell a Rollout Sluice has not reconciled yet: with no
		// conditions and no observedGeneration it reads Current.
		{"a Rollout Sluice has not seen yet is Progressing in Argo CD (kstatus: Current)", nil, status.CurrentStatus, "Progressing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := rolloutIn(tc.opts...)
			if tc.opts == nil {
				ro.Status = sluicev1.RolloutStatus{}
			}
			expectHealth(t, ro, tc.wantK, tc.argo)
		})
	}
}

func TestArgoCDHealthCheckReportsASuspendedRolloutAsSuspended(t *testing.T) {
	ro := rolloutIn(append([]rolloutOpt{cond("Suspended", metav1.ConditionTrue, "Suspended", "spec.suspend is true")}, releasing...)...)
	if got, _ := argoHealth(t, ro); got != "Suspended" {
		t.Errorf("Argo CD health = %s, want Suspended", got)
	}
}

func TestKubectlWaitForConditionReadyReturnsOnlyForAReadyRollout(t *testing.T) {
	ns := "kubectl-wait"
	ensureNamespace(t, ns)
	for _, tc := range []struct {
		name string
		opts []rolloutOpt
		met  bool
	}{
		{"releasing", releasing, false},
		{"succeeded", succeeded, true},
		{"failed", failed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := rolloutIn(tc.opts...)
			ro.Name, ro.Namespace, ro.Generation = tc.name, ns, 0
			st := ro.Status
			must(t, admin.Create(context.Background(), ro))
			// Status as the controller would write it, at the generation
			// the API server gave the object.
			st.ObservedGeneration = ro.Generation
			for i := range st.Conditions {
				st.Conditions[i].ObservedGeneration = ro.Generation
			}
			ro.Status = st
			must(t, admin.Status().Update(context.Background(), ro))

			err := kubectlWaitReady(ns, "rollouts.sluice.dev/"+tc.name, 2*time.Second)
			if tc.met && err != nil {
				t.Errorf("kubectl wait --for=condition=Ready on a %s Rollout: %v, want success", tc.name, err)
			}
			if !tc.met && err == nil {
				t.Errorf("kubectl wait --for=condition=Ready returned for a %s Rollout, want a timeout", tc.name)
			}
		})
	}
}

// kubectlWaitReady runs kubectl wait's own code: kubectl -n ns wait
// --for=condition=Ready --timeout=timeout resource.
func kubectlWaitReady(ns, resource string, timeout time.Duration) error {
	getter := genericclioptions.NewConfigFlags(false)
	getter.KubeConfig, getter.Namespace = ptr.To(kubeconfig), ptr.To(ns)
	flags := wait.NewWaitFlags(getter, genericiooptions.NewTestIOStreamsDiscard())
	flags.ForCondition, flags.Timeout = "condition=Ready", timeout
	o, err := flags.ToOptions([]string{resource})
	if err != nil {
		return err
	}
	return o.RunWait()
}

func TestGitOpsDocShowsTheTestedHealthCheckVerbatim(t *testing.T) {
	script := strings.TrimSpace(string(readFile(t, chartDir, "argocd", "health.lua")))
	doc := string(readFile(t, repoRoot, "docs", "gitops.md"))
	// The doc embeds it in Argo CD's ConfigMap, indented under the key.
	var indented []string
	for _, l := range strings.Split(script, "\n") {
		if l == "" {
			indented = append(indented, "")
			continue
		}
		indented = append(indented, "    "+l)
	}
	if !strings.Contains(doc, strings.Join(indented, "\n")) {
		t.Errorf("docs/gitops.md does not include charts/sluice/argocd/health.lua verbatim (indented by 4 under resource.customizations.health.sluice.dev_Rollout): copy it there")
	}
}
