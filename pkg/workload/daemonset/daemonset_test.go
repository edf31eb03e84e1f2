package daemonset_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/daemonset"
	"github.com/sluice-dev/sluice/pkg/workload/workloadtest"
)

// running is a DaemonSet whose controller has rolled it out on n nodes.
func running(n int32) *appsv1.DaemonSet {
	d := workloadtest.DaemonSet()
	d.Generation = 2
	d.Status = appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: n, CurrentNumberScheduled: n,
		UpdatedNumberScheduled: n, NumberReady: n, NumberAvailable: n}
	return d
}

func TestADaemonSetIsReadAndChangedThroughTheWorkloadInterface(t *testing.T) {
	var k workload.Kind = daemonset.Kind{}
	if k.Kind() != "DaemonSet" {
		t.Fatalf("kind %s", k.Kind())
	}
	if _, ok := k.New().(*appsv1.DaemonSet); !ok {
		t.Fatalf("New returned a %T", k.New())
	}
	d := running(4)
	d.Status.NumberAvailable = 3
	w := k.Wrap(d)
	if w.Object() != d {
		t.Fatal("the workload is not the DaemonSet itself")
	}
	if w.Replicas() != 4 || w.Available() != 3 || w.MatchLabels()["app"] != "web" {
		t.Errorf("replicas %d, available %d, selector %v", w.Replicas(), w.Available(), w.MatchLabels())
	}
	cp := w.DeepCopy()
	cp.SetReplicas(0)
	if w.Replicas() != 4 || daemonset.Parked(d) {
		t.Errorf("parking a copy parked the original")
	}
}

// TestParkingRunsNoPodAndUnparkingGivesBackTheUsersSpec: "scaling" a
// DaemonSet to zero requires a node label no node carries; any count above
// zero removes that requirement and nothing else, so the user's
// nodeSelector and node affinity come back exactly as written.
func TestParkingRunsNoPodAndUnparkingGivesBackTheUsersSpec(t *testing.T) {
	for name, edit := range map[string]func(*appsv1.DaemonSet){
		"with a nodeSelector and node affinity": func(*appsv1.DaemonSet) {},
		"without a nodeSelector":                func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.NodeSelector = nil },
		"with an empty nodeSelector":            func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.NodeSelector = map[string]string{} },
	} {
		t.Run(name, func(t *testing.T) {
			d := running(3)
			edit(d)
			user := d.Spec.Template.DeepCopy()
			w := daemonset.Of(d)

			w.SetReplicas(0)
			if !daemonset.Parked(d) || w.Replicas() != 0 {
				t.Fatalf("parked: %v, replicas %d, want parked and 0", daemonset.Parked(d), w.Replicas())
			}
			if got := d.Spec.Template.Spec.NodeSelector[workload.ParkedNodeLabel]; got != workload.ParkedNodeValue {
				t.Errorf("a parked DaemonSet's pods require %s=%q, want %q", workload.ParkedNodeLabel, got, workload.ParkedNodeValue)
			}
			for k, v := range user.Spec.NodeSelector {
				if d.Spec.Template.Spec.NodeSelector[k] != v {
					t.Errorf("parking dropped the user's nodeSelector %s=%s", k, v)
				}
			}
			if !equality.Semantic.DeepEqual(d.Spec.Template.Spec.Affinity, user.Spec.Affinity) {
				t.Errorf("parking changed the node affinity")
			}
			if ok, msg := w.Ready(100); ok || msg == "" {
				t.Errorf("a parked DaemonSet is ready (%q)", msg)
			}

			w.SetReplicas(7)
			if daemonset.Parked(d) || w.Replicas() != 3 {
				t.Errorf("unparked: parked %v, replicas %d, want the 3 nodes it is scheduled on", daemonset.Parked(d), w.Replicas())
			}
			if len(user.Spec.NodeSelector) == 0 {
				user.Spec.NodeSelector = nil
			}
			if !equality.Semantic.DeepEqual(&d.Spec.Template, user) {
				t.Errorf("unparking did not give back the user's template:\n got %+v\nwant %+v", d.Spec.Template.Spec.NodeSelector, user.Spec.NodeSelector)
			}
		})
	}
}

func TestAParkedAndARunningDaemonSetAreOneRevision(t *testing.T) {
	d := running(3)
	configs := map[string]string{"configmap/cm-vol": "aaa"}
	before, _ := workload.Revision(&d.Spec.Template, configs)
	daemonset.Of(d).SetReplicas(0)
	parked, _ := workload.Revision(&d.Spec.Template, configs)
	if parked != before {
		t.Errorf("parking moved the revision from %s to %s: every park would start a release", before, parked)
	}
	d.Spec.Template.Spec.NodeSelector["pool"] = "core"
	if r, _ := workload.Revision(&d.Spec.Template, configs); r == before {
		t.Error("a change of the user's nodeSelector on a parked DaemonSet kept the revision")
	}
}

// TestAnUnparkedDaemonSetAsksForTheNodesItIsScheduledOn: the count is the
// DaemonSet controller's, never 0 unless parked (0 is how the reconciler
// tells a parked target).
func TestAnUnparkedDaemonSetAsksForTheNodesItIsScheduledOn(t *testing.T) {
	for _, tc := range []struct {
		desired, want int32
	}{{5, 5}, {1, 1}, {0, 1}} {
		d := running(tc.desired)
		if got := daemonset.Replicas(d); got != tc.want {
			t.Errorf("scheduled on %d nodes: replicas %d, want %d", tc.desired, got, tc.want)
		}
	}
}

func TestAPrimaryIsNeverParked(t *testing.T) {
	d := running(3)
	d.OwnerReferences = []metav1.OwnerReference{{APIVersion: "sluice.dev/v1alpha1", Kind: "Rollout", Name: "web", UID: "u", Controller: ptr.To(true)}}
	daemonset.Of(d).SetReplicas(0)
	if daemonset.Parked(d) {
		t.Error("a DaemonSet controlled by a Rollout (a primary) was parked")
	}
}

func TestDaemonSetReadyNeedsEveryNodeUpdatedAndAvailable(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*appsv1.DaemonSet)
		percent int32
		ready   bool
		msg     string
	}{
		{"rolled out on every node", func(*appsv1.DaemonSet) {}, 100, true, ""},
		{"one node not available", func(d *appsv1.DaemonSet) { d.Status.NumberAvailable = 3 }, 100, false, "4/4 nodes run the current spec, 3 available"},
		{"one node on the old spec", func(d *appsv1.DaemonSet) { d.Status.UpdatedNumberScheduled = 3 }, 50, false, "3/4 nodes run the current spec, 4 available"},
		{"the spec not observed yet", func(d *appsv1.DaemonSet) { d.Status.ObservedGeneration = 1 }, 100, false, "the DaemonSet controller has not observed the latest spec yet"},
		{"no node selected", func(d *appsv1.DaemonSet) {
			d.Status = appsv1.DaemonSetStatus{ObservedGeneration: 2}
		}, 100, false, "no node to run on: its nodeSelector, affinity and tolerations select none"},
		{"3 of 4 available at 75%", func(d *appsv1.DaemonSet) { d.Status.NumberAvailable = 3 }, 75, true, ""},
		{"3 of 4 available at 80% (4 needed)", func(d *appsv1.DaemonSet) { d.Status.NumberAvailable = 3 }, 80, false,
			"4/4 nodes run the current spec, 3 available"},
		{"none available at 1%", func(d *appsv1.DaemonSet) { d.Status.NumberAvailable = 0 }, 1, false,
			"4/4 nodes run the current spec, 0 available (1 needed: readiness threshold 1%)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := running(4)
			tt.edit(d)
			ok, msg := daemonset.Ready(d, tt.percent)
			if ok != tt.ready || msg != tt.msg {
				t.Errorf("ready=%v %q, want %v %q", ok, msg, tt.ready, tt.msg)
			}
		})
	}
}
