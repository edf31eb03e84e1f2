package traffic

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

func TestServiceMetadataFollowsTheSpecAndLeavesOthersKeysAlone(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{ManagedByLabel: ManagedByValue, "team": "set-by-someone"},
		Annotations: map[string]string{"cloud.example/lb": "internal"},
	}}
	steps := []struct {
		name            string
		want            *sluicev1.ServiceMetadata
		changed         bool
		labels, annotes map[string]string
	}{
		{"the spec's keys are added", &sluicev1.ServiceMetadata{Labels: map[string]string{"tier": "web"}, Annotations: map[string]string{"a": "1"}}, true,
			map[string]string{ManagedByLabel: ManagedByValue, "team": "set-by-someone", "tier": "web"},
			map[string]string{"cloud.example/lb": "internal", "a": "1", AppliedMetadataAnnotation: `{"labels":["tier"],"annotations":["a"]}`}},
		{"the same spec changes nothing", &sluicev1.ServiceMetadata{Labels: map[string]string{"tier": "web"}, Annotations: map[string]string{"a": "1"}}, false,
			map[string]string{ManagedByLabel: ManagedByValue, "team": "set-by-someone", "tier": "web"},
			map[string]string{"cloud.example/lb": "internal", "a": "1", AppliedMetadataAnnotation: `{"labels":["tier"],"annotations":["a"]}`}},
		{"a key removed from the spec goes, others' stay", &sluicev1.ServiceMetadata{Annotations: map[string]string{"a": "2"}}, true,
			map[string]string{ManagedByLabel: ManagedByValue, "team": "set-by-someone"},
			map[string]string{"cloud.example/lb": "internal", "a": "2", AppliedMetadataAnnotation: `{"annotations":["a"]}`}},
		{"no metadata removes the rest and the record", nil, true,
			map[string]string{ManagedByLabel: ManagedByValue, "team": "set-by-someone"},
			map[string]string{"cloud.example/lb": "internal"}},
	}
	for _, st := range steps {
		// The maps it reads are left as they were: EnsureService syncs a
		// copy of a cached Service's metadata to see whether it changes.
		labelsRead, annotationsRead := svc.Labels, svc.Annotations
		labelsWere, annotationsWere := maps.Clone(labelsRead), maps.Clone(annotationsRead)
		if got := MetadataChanged(svc, st.want); got != st.changed {
			t.Errorf("%s: MetadataChanged = %v, want %v", st.name, got, st.changed)
		}
		if got := SyncMetadata(svc, st.want); got != st.changed {
			t.Errorf("%s: changed = %v, want %v", st.name, got, st.changed)
		}
		if !maps.Equal(svc.Labels, st.labels) || !maps.Equal(svc.Annotations, st.annotes) {
			t.Errorf("%s: labels %v annotations %v, want %v and %v", st.name, svc.Labels, svc.Annotations, st.labels, st.annotes)
		}
		if !maps.Equal(labelsRead, labelsWere) || !maps.Equal(annotationsRead, annotationsWere) {
			t.Errorf("%s: the maps it read were changed: labels %v (were %v), annotations %v (were %v)", st.name, labelsRead, labelsWere, annotationsRead, annotationsWere)
		}
	}
}

// BenchmarkMetadataUnchanged is the question nearly every reconcile asks
// for each Service it ensures, and finds nothing to change.
func BenchmarkMetadataUnchanged(b *testing.B) {
	for _, bc := range []struct {
		name string
		want *sluicev1.ServiceMetadata
	}{
		{"no-metadata", nil},
		{"with-metadata", &sluicev1.ServiceMetadata{Labels: map[string]string{"tier": "web"}, Annotations: map[string]string{"a": "1"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{ManagedByLabel: ManagedByValue, "sluice.dev/rollout": "web"}}}
			SyncMetadata(svc, bc.want)
			b.ReportAllocs()
			for b.Loop() {
				if MetadataChanged(svc, bc.want) {
					b.Fatal("changed")
				}
			}
		})
	}
}
