//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// TestIstioRouterAtAPILevel: no Envoy is available here, so the Istio
// router is checked on the objects: a release writes the VirtualService's
// weights step by step and puts everything back on the primary at the end.
func TestIstioRouterAtAPILevel(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "istio-api")
	var mu sync.Mutex
	var seen []string // distinct primary/canary weight pairs, in order
	s.Given("app v1 behind a canary Rollout on the Istio router (steps 25, 50; 2s)", func() {
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		ro := &sluicev1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: "podinfo"},
			Spec: sluicev1.RolloutSpec{
				TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
				Service:   sluicev1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
				Routing:   &sluicev1.Routing{Istio: &sluicev1.IstioRouting{Hosts: []string{s.Host}}},
				Strategy:  CanarySteps(25, 50),
				Analysis:  &sluicev1.Analysis{Interval: &metav1.Duration{Duration: 2 * time.Second}, Threshold: 2},
			},
		}
		s.CreateRollout(ro)
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		go func() {
			for s.ctx.Err() == nil {
				vs := &istiov1.VirtualService{}
				if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: "podinfo"}, vs); err == nil {
					w := vsWeights(vs)
					mu.Lock()
					if len(seen) == 0 || seen[len(seen)-1] != w {
						seen = append(seen, w)
					}
					mu.Unlock()
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}).When("v2 is released", func() {
		s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
	}).Then("it is promoted", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 90*time.Second)
		time.Sleep(200 * time.Millisecond)
	}).And("the VirtualService went 100/0, 75/25, 50/50 and back to 100/0 (primary/canary)", func() {
		mu.Lock()
		got := append([]string(nil), seen...)
		mu.Unlock()
		s.Figure("VirtualService weights seen", strings.Join(got, " -> "))
		// Promoting may route everything to the canary before the primary
		// takes the new template: allow 0/100 between 50/50 and the end.
		var want []string
		for _, w := range got {
			if w != "0/100" {
				want = append(want, w)
			}
		}
		if strings.Join(want, " ") != "100/0 75/25 50/50 100/0" {
			s.Fatalf("VirtualService weights %v", got)
		}
		ro := &sluicev1.Rollout{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(s.Rollout), ro), "reading the Rollout")
		drs := &istiov1.DestinationRuleList{}
		s.Must(s.c.Client.List(s.ctx, drs, client.InNamespace(s.NS)), "listing DestinationRules")
		var names []string
		for _, d := range drs.Items {
			names = append(names, d.Name)
		}
		sort.Strings(names)
		s.Logf("DestinationRules: %v", names)
		s.ExpectEvents("NewRevision", "WeightChanged", "Promoted")
	})
}

// vsWeights renders the weights of the VirtualService's route to the
// primary and canary as "primary/canary".
func vsWeights(vs *istiov1.VirtualService) string {
	var p, c int32
	for _, h := range vs.Spec.GetHttp() {
		for _, r := range h.GetRoute() {
			host := r.GetDestination().GetHost()
			switch {
			case strings.HasPrefix(host, "podinfo-primary"):
				p += r.GetWeight()
			case strings.HasPrefix(host, "podinfo-canary"):
				c += r.GetWeight()
			}
		}
	}
	return fmt.Sprintf("%d/%d", p, c)
}
