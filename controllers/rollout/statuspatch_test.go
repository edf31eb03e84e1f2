package rollout

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// The status patch does to a Rollout's status what a merge patch of the
// whole Rollout does, with the same optimistic lock, and touches nothing
// else.
func TestTheStatusPatchChangesWhatAWholeMergePatchChangesInTheStatus(t *testing.T) {
	base := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", ResourceVersion: "41", Annotations: map[string]string{"a": "b"}},
		Spec:       sluicev1.RolloutSpec{TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: "web"}},
		Status: sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CanaryWeight: 20, StepProgress: "2/3",
			TrackedConfigs: map[string]string{"configmap/a": "1", "secret/b": "2"},
			Conditions:     []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Waiting"}}},
	}
	for name, change := range map[string]func(*sluicev1.Rollout){
		"a field and a weight": func(ro *sluicev1.Rollout) { ro.Status.Phase, ro.Status.CanaryWeight = sluicev1.PhaseSucceeded, 0 },
		"a field emptied":      func(ro *sluicev1.Rollout) { ro.Status.StepProgress = "" },
		"a map key removed":    func(ro *sluicev1.Rollout) { delete(ro.Status.TrackedConfigs, "secret/b") },
		"a condition replaced": func(ro *sluicev1.Rollout) {
			ro.Status.Conditions[0].Status, ro.Status.Conditions[0].Reason = metav1.ConditionTrue, "Done"
		},
		"a pointer set":         func(ro *sluicev1.Rollout) { ro.Status.RunStartedAt = &metav1.Time{} },
		"the spec (not status)": func(ro *sluicev1.Rollout) { ro.Spec.TargetRef.Name = "other"; ro.Status.ObservedGeneration = 2 },
	} {
		ro := base.DeepCopy()
		change(ro)
		whole, err := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}).Data(ro)
		if err != nil {
			t.Fatal(err)
		}
		ours, err := statusPatch{base: &base.Status}.Data(ro)
		if err != nil {
			t.Fatal(err)
		}
		original, _ := json.Marshal(base)
		var got, want sluicev1.Rollout
		for _, p := range []struct {
			patch []byte
			into  *sluicev1.Rollout
		}{{whole, &want}, {ours, &got}} {
			out, err := jsonpatch.MergePatch(original, p.patch)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := json.Unmarshal(out, p.into); err != nil {
				t.Fatal(err)
			}
		}
		if !equality.Semantic.DeepEqual(got.Status, want.Status) {
			t.Errorf("%s: the status patch %s makes\n%+v\nwhere the whole merge patch %s makes\n%+v", name, ours, got.Status, whole, want.Status)
		}
		if !equality.Semantic.DeepEqual(got.Spec, base.Spec) || !equality.Semantic.DeepEqual(got.Annotations, base.Annotations) {
			t.Errorf("%s: the status patch %s changed more than the status", name, ours)
		}
		var lock struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(ours, &lock); err != nil || lock.Metadata.ResourceVersion != "41" {
			t.Errorf("%s: the status patch %s does not lock the resourceVersion 41", name, ours)
		}
	}
}
