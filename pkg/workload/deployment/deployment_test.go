package deployment_test

import (
	"testing"

	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
	"github.com/sluice-dev/sluice/pkg/workload/workloadtest"
)

func TestADeploymentIsReadAndChangedThroughTheWorkloadInterface(t *testing.T) {
	var k workload.Kind = deployment.Kind{}
	d := workloadtest.Target()
	d.Status.AvailableReplicas = 2
	w := k.Wrap(d)
	if w.Object() != d {
		t.Fatal("the workload is not the Deployment itself")
	}
	if w.Replicas() != 3 || w.Available() != 2 || w.MatchLabels()["app"] != "web" {
		t.Errorf("replicas %d, available %d, selector %v", w.Replicas(), w.Available(), w.MatchLabels())
	}
	w.SetReplicas(5)
	w.Template().Labels["extra"] = "1"
	if *d.Spec.Replicas != 5 || d.Spec.Template.Labels["extra"] != "1" {
		t.Errorf("changes through the workload did not reach the Deployment: replicas %d, labels %v", *d.Spec.Replicas, d.Spec.Template.Labels)
	}
	cp := w.DeepCopy()
	cp.SetReplicas(7)
	if w.Replicas() != 5 {
		t.Errorf("a copy's change reached the original")
	}
}

func TestAPrimaryTakesTheBuiltSpecAndLabelsAndKeepsItsOtherMetadata(t *testing.T) {
	k := deployment.Kind{}
	target := k.Wrap(workloadtest.Target())
	_, sel, _ := target.Selectors()
	old := k.BuildPrimary(target, workload.Primary{Selector: sel, Revision: "rev1", Replicas: 3})
	old.Object().SetResourceVersion("42")
	workload.SetAnnotation(old, "team.io/note", "kept")

	target.Template().Spec.Containers[0].Image = "web:2"
	built := k.BuildPrimary(target, workload.Primary{Selector: sel, Revision: "rev2", Replicas: 4})
	old.TakeSpec(built)
	if got := old.Template().Spec.Containers[0].Image; got != "web:2" || old.Replicas() != 4 {
		t.Errorf("the primary runs %s with %d replicas, want web:2 with 4", got, old.Replicas())
	}
	if old.Object().GetResourceVersion() != "42" || old.Object().GetAnnotations()["team.io/note"] != "kept" {
		t.Errorf("the primary lost its metadata: %+v", old.Object())
	}
	if workload.RevisionOf(old) != "rev1" {
		t.Errorf("TakeSpec moved the recorded revision to %s; the reconciler sets it", workload.RevisionOf(old))
	}
}
