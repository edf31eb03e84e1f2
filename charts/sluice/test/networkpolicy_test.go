package test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestNetworkPoliciesLetOnlyTheManagerAndNamedPeersReachTheLoadtester: with
// networkPolicy.enabled, the loadtester (which opens gates and sends load)
// takes requests from the manager's pods and the peers the values name, and
// the manager only on its metrics and probe ports. Off by default: not every
// CNI enforces them.
func TestNetworkPoliciesLetOnlyTheManagerAndNamedPeersReachTheLoadtester(t *testing.T) {
	if np := render(t, "loadtester: {enabled: true}").find("NetworkPolicy", ""); np != nil {
		t.Errorf("NetworkPolicy %s rendered by default", np.GetName())
	}
	r := render(t, `
loadtester: {enabled: true}
networkPolicy:
  enabled: true
  loadtesterFrom: [{namespaceSelector: {matchLabels: {team: release}}}]
`)
	mgr, lt := r.manager(), &appsv1.Deployment{}
	r.into("Deployment", "-loadtester", lt)

	ltPolicy := &networkingv1.NetworkPolicy{}
	r.into("NetworkPolicy", "-loadtester", ltPolicy)
	if !selects(t, &ltPolicy.Spec.PodSelector, lt.Spec.Template.Labels) || selects(t, &ltPolicy.Spec.PodSelector, mgr.Spec.Template.Labels) {
		t.Errorf("the loadtester's policy applies to %v: want the loadtester's pods only", ltPolicy.Spec.PodSelector)
	}
	if len(ltPolicy.Spec.Ingress) != 1 {
		t.Fatalf("loadtester ingress rules %+v, want one", ltPolicy.Spec.Ingress)
	}
	from := ltPolicy.Spec.Ingress[0].From
	if len(from) != 2 || from[0].PodSelector == nil || !selects(t, from[0].PodSelector, mgr.Spec.Template.Labels) ||
		from[1].NamespaceSelector == nil || from[1].NamespaceSelector.MatchLabels["team"] != "release" {
		t.Errorf("the loadtester admits %+v: want the manager's pods and the release team's namespaces", from)
	}
	if selects(t, from[0].PodSelector, lt.Spec.Template.Labels) {
		t.Errorf("the loadtester admits its own pods' peers as if they were the manager")
	}

	mgrPolicy := &networkingv1.NetworkPolicy{}
	r.into("NetworkPolicy", "-manager", mgrPolicy)
	if !selects(t, &mgrPolicy.Spec.PodSelector, mgr.Spec.Template.Labels) {
		t.Errorf("the manager's policy applies to %v, not the manager's pods", mgrPolicy.Spec.PodSelector)
	}
	var ports []int32
	for _, rule := range mgrPolicy.Spec.Ingress {
		for _, p := range rule.Ports {
			ports = append(ports, p.Port.IntVal)
		}
	}
	if len(ports) != 2 || ports[0] != 8080 || ports[1] != 8081 {
		t.Errorf("the manager accepts ports %v, want its metrics and probe ports (8080, 8081) only", ports)
	}
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return s.Matches(labels.Set(podLabels))
}

func TestTheLoadtestersEgressValuesReachItsFlags(t *testing.T) {
	r := render(t, "loadtester: {enabled: true, egress: {allow: [127.0.0.1/32, hooks.local], deny: [10.0.0.0/8]}}")
	lt := &appsv1.Deployment{}
	r.into("Deployment", "-loadtester", lt)
	expectArgs(t, container(lt).Args, "--egress-allow=127.0.0.1/32,hooks.local", "--egress-deny=10.0.0.0/8")
}
