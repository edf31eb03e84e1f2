package rollout

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/randfill"

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

// mergePatch, for pairs of statuses that differ in a few random fields,
// nested ones included: applied to the old status, it gives the new one.
func TestTheStatusMergePatchTurnsTheOldStatusIntoTheNew(t *testing.T) {
	f := randfill.NewWithSeed(7).NilChance(0.3).NumElements(0, 3).Funcs(
		// Times as the API server keeps them: whole seconds.
		func(tm *metav1.Time, c randfill.Continue) { *tm = metav1.Unix(c.Int63n(2e9), 0) },
	)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 2000 {
		var old, fresh sluicev1.RolloutStatus
		f.Fill(&old)
		f.Fill(&fresh)
		// Most fields as they were, a few changed, down into nested ones.
		mix(reflect.ValueOf(&fresh).Elem(), reflect.ValueOf(&old).Elem(), r)
		from, err := json.Marshal(&old)
		if err != nil {
			t.Fatal(err)
		}
		to, err := json.Marshal(&fresh)
		if err != nil {
			t.Fatal(err)
		}
		patch, err := mergePatch(from, to)
		if err != nil {
			t.Fatal(err)
		}
		applied, err := jsonpatch.MergePatch(from, patch)
		if err != nil {
			t.Fatalf("pair %d: the patch %s does not apply: %v", i, patch, err)
		}
		var got, want sluicev1.RolloutStatus
		if err := json.Unmarshal(applied, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(to, &want); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(got, want) {
			t.Fatalf("pair %d: the patch %s turns\n%s\ninto\n%s\nwant\n%s", i, patch, from, applied, to)
		}
		if string(from) == string(to) && string(patch) != "{}" {
			t.Errorf("pair %d: equal statuses, patch %s", i, patch)
		}
	}
}

// mix sets each field of dst (a struct) back to src's with probability
// 3/4, going into the structs (and pointers to structs) both have.
func mix(dst, src reflect.Value, r *rand.Rand) {
	for i := range dst.NumField() {
		d, s := dst.Field(i), src.Field(i)
		switch {
		case !d.CanSet():
		case d.Kind() == reflect.Struct && r.IntN(2) == 0:
			mix(d, s, r)
		case d.Kind() == reflect.Pointer && d.Type().Elem().Kind() == reflect.Struct && !d.IsNil() && !s.IsNil() && r.IntN(2) == 0:
			mix(d.Elem(), s.Elem(), r)
		case r.IntN(4) != 0:
			d.Set(s)
		}
	}
}

func BenchmarkStatusPatch(b *testing.B) {
	base := sluicev1.RolloutStatus{Phase: sluicev1.PhaseProgressing, CanaryWeight: 20, StepProgress: "2/3",
		StableRevision: "6b7f9c", CanaryRevision: "7c8d9e", RunStartedAt: &metav1.Time{}, StepStartedAt: &metav1.Time{},
		TrackedConfigs: map[string]string{"configmap/a": "1", "secret/b": "2"},
		Conditions: []metav1.Condition{
			{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Waiting", Message: "the canary is analysed"},
			{Type: "Progressing", Status: metav1.ConditionTrue, Reason: "Analysing", Message: "iteration 2 of 3"},
		}}
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "41"}, Status: *base.DeepCopy()}
	ro.Status.StepProgress, ro.Status.Conditions[1].Message = "3/3", "iteration 3 of 3"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (statusPatch{base: &base}).Data(ro); err != nil {
			b.Fatal(err)
		}
	}
}
