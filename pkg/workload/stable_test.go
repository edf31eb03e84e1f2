package workload_test

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
	"github.com/sluice-dev/sluice/pkg/workload/workloadtest"
)

// primaryAt returns a primary that runs image at revision rev.
func primaryAt(rev, image string) workload.Workload {
	d := workloadtest.Target()
	d.Spec.Template.Spec.Containers[0].Image = image
	d.Annotations = map[string]string{workload.RevisionAnnotation: rev}
	return deployment.Of(d)
}

func TestThePrimaryKeepsTheStableTemplateOnlyWhileItRunsTheStableRevision(t *testing.T) {
	p := primaryAt("stable", "web:1")
	if err := workload.KeepStableTemplate(p, "stable"); err != nil {
		t.Fatal(err)
	}
	if !workload.Restorable(p, "stable") || workload.Restorable(p, "other") {
		t.Errorf("restorable for stable %v, for other %v", workload.Restorable(p, "stable"), workload.Restorable(p, "other"))
	}
	// The promotion replaces the template; a second try keeps what the
	// first recorded.
	p.Template().Spec.Containers[0].Image = "web:2"
	workload.SetAnnotation(p, workload.RevisionAnnotation, "new")
	if err := workload.KeepStableTemplate(p, "stable"); err != nil {
		t.Fatal(err)
	}
	tmpl, err := workload.StableTemplate(p, "stable")
	if err != nil || tmpl == nil {
		t.Fatalf("StableTemplate = %v, %v", tmpl, err)
	}
	if got := tmpl.Spec.Containers[0].Image; got != "web:1" {
		t.Errorf("the kept template runs %s, want web:1", got)
	}
	if tmpl, _ := workload.StableTemplate(p, "other"); tmpl != nil {
		t.Errorf("a template was returned for a revision never kept")
	}
}

func TestTheStableConfigListKeepsWellFormedCopiesOnly(t *testing.T) {
	d := &appsv1.Deployment{}
	workload.SetStableConfigs(d, []string{"configmap/a-primary", "secret/b-primary"})
	d.Annotations[workload.StableConfigsAnnotation] += ",pod/x,configmap/,nonsense"
	var got []string
	for _, r := range workload.StableConfigs(d) {
		got = append(got, r.Key())
	}
	if want := []string{"configmap/a-primary", "secret/b-primary"}; !slices.Equal(got, want) {
		t.Errorf("StableConfigs = %v, want %v", got, want)
	}
	workload.SetStableConfigs(d, nil)
	if _, ok := d.Annotations[workload.StableConfigsAnnotation]; ok {
		t.Errorf("an empty list left the annotation")
	}
}
