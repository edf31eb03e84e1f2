package workload_test

import (
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/workloadtest"
)

// pdbOpt changes a test PodDisruptionBudget.
type pdbOpt func(*policyv1.PodDisruptionBudget)

// budget builds a PodDisruptionBudget "b" with minAvailable 1 over sel.
func budget(sel *metav1.LabelSelector, opts ...pdbOpt) *policyv1.PodDisruptionBudget {
	p := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: sel},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func matchLabels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func appIn(values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: values},
	}}
}

func TestPrimaryPDBCopiesTheBudgetsOfTheTargetsPodsOnly(t *testing.T) {
	d := workloadtest.Target() // pods app=web, tier=front; selector app=web
	m := workload.Relabel{Target: map[string]string{"app": "web"}, Primary: map[string]string{"app": "web-primary"}}
	quarterUnavailableAlwaysAllow := func(p *policyv1.PodDisruptionBudget) {
		p.Spec.MinAvailable, p.Spec.MaxUnavailable = nil, ptr.To(intstr.FromString("25%"))
		p.Spec.UnhealthyPodEvictionPolicy = ptr.To(policyv1.AlwaysAllow)
	}
	for _, tc := range []struct {
		name string
		src  *policyv1.PodDisruptionBudget
		want *metav1.LabelSelector // the copy's selector; nil: no copy
	}{
		{"the target's selector", budget(matchLabels("app", "web")), matchLabels("app", "web-primary")},
		{"the target's selector and more of its pod labels", budget(matchLabels("app", "web", "tier", "front")), matchLabels("app", "web-primary", "tier", "front")},
		{"In with the target's value only", budget(appIn("web")), appIn("web-primary")},
		{"maxUnavailable and the unhealthy pod policy", budget(matchLabels("app", "web"), quarterUnavailableAlwaysAllow), matchLabels("app", "web-primary")},
		{"another app", budget(matchLabels("app", "cache")), nil},
		{"a budget over many apps that covers the primary already", budget(matchLabels("tier", "front")), nil},
		{"the target's value but labels its pods lack", budget(matchLabels("app", "web", "tier", "back")), nil},
		{"In with another app too (the copy would overlap it)", budget(appIn("web", "cache")), nil},
		{"no selector", budget(nil), nil},
		{"an empty selector (every pod)", budget(&metav1.LabelSelector{}), nil},
		{"Sluice's own copy", budget(matchLabels("app", "web"), func(p *policyv1.PodDisruptionBudget) {
			p.Labels = map[string]string{traffic.ManagedByLabel: traffic.ManagedByValue}
		}), nil},
		{"a budget being deleted", budget(matchLabels("app", "web"), func(p *policyv1.PodDisruptionBudget) {
			p.DeletionTimestamp = ptr.To(metav1.Now())
		}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.src.DeepCopy()
			got := workload.PrimaryPDB(tc.src, d.Spec.Template.Labels, m, "web")
			if !equality.Semantic.DeepEqual(tc.src, before) {
				t.Errorf("the original was changed: %+v", tc.src)
			}
			if tc.want == nil {
				if got != nil {
					t.Errorf("copied to %s selecting %v, want no copy", got.Name, got.Spec.Selector)
				}
				return
			}
			if got == nil {
				t.Fatalf("no copy, want one selecting %v", tc.want)
			}
			if !equality.Semantic.DeepEqual(got.Spec.Selector, tc.want) {
				t.Errorf("the copy selects %v, want %v", got.Spec.Selector, tc.want)
			}
			if got.Name != "b-primary" || got.Namespace != "ns" {
				t.Errorf("the copy is %s/%s, want ns/b-primary", got.Namespace, got.Name)
			}
			if got.Labels[workload.RolloutLabel] != "web" || got.Labels[traffic.ManagedByLabel] != traffic.ManagedByValue {
				t.Errorf("the copy's labels = %v", got.Labels)
			}
			budgetOf := func(s policyv1.PodDisruptionBudgetSpec) policyv1.PodDisruptionBudgetSpec {
				s.Selector = nil
				return s
			}
			if !equality.Semantic.DeepEqual(budgetOf(got.Spec), budgetOf(tc.src.Spec)) {
				t.Errorf("the copy's budget = %+v, want the original's %+v", budgetOf(got.Spec), budgetOf(tc.src.Spec))
			}
		})
	}
}
