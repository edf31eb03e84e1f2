package rollout_test

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The Deployment controller rewrites a Deployment's status conditions as
// its pods come and go (the Progressing condition's time and message), and
// the EndpointSlice controller a slice's addresses and its endpoints'
// serving and terminating states. Sluice reads none of that: such a
// rewrite wakes no reconcile (each one cost the manager CPU for nothing,
// many times a release). A change of what Sluice does read still wakes
// the Rollout.
func TestRewritesOfWhatSluiceDoesNotReadWakeNoReconcile(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", withRouter("gatewayAPI"))
	s.endpointSlice("podinfo", "podinfo-primary", 2)
	s.waitReplicas("podinfo", 0, "the target parked")
	before := s.quietReconciles()

	for i := range 3 {
		s.editDeploymentStatus("podinfo-primary", func(d *appsv1.Deployment) {
			d.Status.Conditions = []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
				Message:        fmt.Sprintf(`ReplicaSet "podinfo-primary-%d" has successfully progressed.`, i),
				LastUpdateTime: metav1.Now(),
			}}
		})
		s.editEndpointSlice("podinfo-primary-slice", func(sl *discoveryv1.EndpointSlice) {
			sl.Endpoints[0].Addresses = []string{fmt.Sprintf("10.0.1.%d", i+1)}
			sl.Endpoints[1].Conditions.Serving = &[]bool{true}[0]
		})
	}
	// A woken Rollout is reconciled within milliseconds here; give it two
	// seconds.
	time.Sleep(2 * time.Second)
	if n := reconciles(t) - before; n != 0 {
		t.Errorf("%v reconciles after rewrites of status conditions and endpoint addresses only, want none", n)
	}

	// One of the primary's pods stops being ready: its slice says so, and
	// the Rollout looks.
	s.editEndpointSlice("podinfo-primary-slice", func(sl *discoveryv1.EndpointSlice) {
		sl.Endpoints[0].Conditions.Ready = &[]bool{false}[0]
	})
	s.eventually(5*time.Second, "a reconcile after a primary pod stopped being ready", func() error {
		if reconciles(t) == before {
			return fmt.Errorf("no reconcile")
		}
		return nil
	})
}

// editDeploymentStatus changes a Deployment's status as a controller would.
func (s *story) editDeploymentStatus(name string, edit func(*appsv1.Deployment)) {
	s.t.Helper()
	d := s.getDeployment(name)
	edit(d)
	s.must(k8sClient.Status().Update(s.ctx, d))
}

// editEndpointSlice changes an EndpointSlice as the EndpointSlice
// controller would.
func (s *story) editEndpointSlice(name string, edit func(*discoveryv1.EndpointSlice)) {
	s.t.Helper()
	sl := &discoveryv1.EndpointSlice{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: name}, sl))
	edit(sl)
	s.must(k8sClient.Update(s.ctx, sl))
}

// quietReconciles waits until the Rollout controller has reconciled
// nothing for a second, and returns how many reconciles it has made.
func (s *story) quietReconciles() float64 {
	s.t.Helper()
	last, since := reconciles(s.t), time.Now()
	s.eventually(storyTimeout, "the Rollout controller quiet for a second", func() error {
		if n := reconciles(s.t); n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) < time.Second {
			return fmt.Errorf("reconciled %v times, the last less than a second ago", last)
		}
		return nil
	})
	return last
}

// reconciles is how many reconciles the Rollout controller has made in
// this process (one story's manager runs at a time), from the registry
// the manager's /metrics serves.
func reconciles(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "rollout" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
