package daemonset_test

import (
	"maps"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/daemonset"
	"github.com/sluice-dev/sluice/pkg/workload/workloadtest"
)

func TestBuildPrimaryRunsTheUsersSpecUnparkedWithItsOwnSelectorAndConfigCopies(t *testing.T) {
	target := workloadtest.DaemonSet()
	user := target.Spec.Template.Spec.DeepCopy()
	daemonset.Of(target).SetReplicas(0) // parked, as between releases
	_, sel, err := daemonset.Selectors(target)
	if err != nil {
		t.Fatal(err)
	}
	copied := map[string]string{"configmap/cm-vol": "cm-vol-primary"}
	p := daemonset.BuildPrimary(target, workload.Primary{Selector: sel, Copied: copied, Revision: "rev1", Replicas: 3})

	if p.Name != "web-primary" || p.Namespace != "ns" || p.Labels[workload.RolloutLabel] != "web" || p.Labels["team"] != "a" || workload.RevisionOf(daemonset.Of(p)) != "rev1" {
		t.Errorf("primary meta = %+v", p.ObjectMeta)
	}
	if !maps.Equal(p.Spec.Selector.MatchLabels, map[string]string{"app": "web-primary"}) || p.Spec.Template.Labels["app"] != "web-primary" || p.Spec.Template.Labels["tier"] != "front" {
		t.Errorf("primary selector %v, pod labels %v", p.Spec.Selector.MatchLabels, p.Spec.Template.Labels)
	}
	if p.Spec.Template.Annotations[workload.RevisionAnnotation] != "rev1" {
		t.Errorf("the primary's pods do not carry the revision")
	}
	if daemonset.Parked(p) {
		t.Fatal("the primary was built parked: it would run no pod")
	}
	if !maps.Equal(p.Spec.Template.Spec.NodeSelector, user.NodeSelector) || !equality.Semantic.DeepEqual(p.Spec.Template.Spec.Affinity, user.Affinity) {
		t.Errorf("the primary runs on nodeSelector %v, affinity %+v; want the user's %v, %+v",
			p.Spec.Template.Spec.NodeSelector, p.Spec.Template.Spec.Affinity, user.NodeSelector, user.Affinity)
	}
	if p.Spec.Template.Spec.Volumes[0].ConfigMap.Name != "cm-vol-primary" {
		t.Errorf("config reference not renamed to the copy")
	}
	if !daemonset.Parked(target) || target.Spec.Template.Labels["app"] != "web" {
		t.Errorf("BuildPrimary modified the target")
	}
}

func TestAPrimaryTakesTheBuiltSpecAndLabelsAndKeepsItsOtherMetadata(t *testing.T) {
	k := daemonset.Kind{}
	target := k.Wrap(workloadtest.DaemonSet())
	_, sel, _ := target.Selectors()
	old := k.BuildPrimary(target, workload.Primary{Selector: sel, Revision: "rev1"})
	old.Object().SetResourceVersion("42")
	workload.SetAnnotation(old, "team.io/note", "kept")

	target.Template().Spec.Containers[0].Image = "web:2"
	target.SetReplicas(0)
	old.TakeSpec(k.BuildPrimary(target, workload.Primary{Selector: sel, Revision: "rev2"}))
	if got := old.Template().Spec.Containers[0].Image; got != "web:2" || daemonset.Parked(old.Object().(*appsv1.DaemonSet)) {
		t.Errorf("the primary runs %s, parked %v; want web:2, not parked", got, daemonset.Parked(old.Object().(*appsv1.DaemonSet)))
	}
	if old.Object().GetResourceVersion() != "42" || old.Object().GetAnnotations()["team.io/note"] != "kept" {
		t.Errorf("the primary lost its metadata: %+v", old.Object())
	}
}

// TestSelectorsRefuseDaemonSetsThatCannotRunBesideTheirPrimary: primary and
// canary pods share each node during a run.
func TestSelectorsRefuseDaemonSetsThatCannotRunBesideTheirPrimary(t *testing.T) {
	tests := []struct {
		name string
		edit func(*appsv1.DaemonSet)
		want string
	}{
		{"on the host's network", func(d *appsv1.DaemonSet) { d.Spec.Template.Spec.HostNetwork = true }, "hostNetwork: true"},
		{"on a host port", func(d *appsv1.DaemonSet) {
			d.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80}}
		}, "binds host port 80 (container app)"},
		{"updated on delete", func(d *appsv1.DaemonSet) {
			d.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
		}, "updateStrategy OnDelete"},
		{"selecting with matchExpressions", func(d *appsv1.DaemonSet) {
			d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}
		}, "daemonset web selects pods with matchExpressions"},
		{"without matchLabels", func(d *appsv1.DaemonSet) { d.Spec.Selector = &metav1.LabelSelector{} }, "daemonset web has no spec.selector.matchLabels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := workloadtest.DaemonSet()
			tt.edit(d)
			_, _, err := daemonset.Selectors(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
	d := workloadtest.DaemonSet()
	d.Spec.Template.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	if _, _, err := daemonset.Selectors(d); err != nil {
		t.Errorf("a DaemonSet on pod ports only was refused: %v", err)
	}
}
