package traffic

import (
	"encoding/json"
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// AppliedMetadataAnnotation lists, on a Service or route Sluice generates,
// the label and annotation keys it set from the Rollout's service.apex,
// .primary or .canary, or the router's metadata: a key later removed from
// the spec is removed from the object, and keys others set are left alone.
const AppliedMetadataAnnotation = "sluice.dev/applied-metadata"

// appliedKeys is the value of AppliedMetadataAnnotation.
type appliedKeys struct {
	Labels      []string `json:"labels,omitempty"`
	Annotations []string `json:"annotations,omitempty"`
}

// serviceMetadata is the user's metadata for the Service named name.
func serviceMetadata(t Target, name string) *sluicev1.ServiceMetadata {
	s := t.Rollout.Spec.Service
	switch name {
	case t.Apex:
		return s.Apex
	case t.Primary:
		return s.Primary
	case t.Canary:
		return s.Canary
	}
	return nil
}

// SyncMetadata puts the user's labels and annotations on obj (a Service or
// a route Sluice generates), removes the ones it put there before that want
// no longer has, and records what it set. It reports whether obj changed.
func SyncMetadata(obj metav1.Object, want *sluicev1.ServiceMetadata) bool {
	if want == nil {
		want = &sluicev1.ServiceMetadata{}
	}
	var before appliedKeys
	if raw, ok := obj.GetAnnotations()[AppliedMetadataAnnotation]; ok {
		// A value that does not parse is treated as nothing applied.
		_ = json.Unmarshal([]byte(raw), &before)
	}
	labels, lchanged := syncMap(obj.GetLabels(), want.Labels, before.Labels)
	annotations, achanged := syncMap(obj.GetAnnotations(), want.Annotations, before.Annotations)
	now := appliedKeys{Labels: slices.Sorted(maps.Keys(want.Labels)), Annotations: slices.Sorted(maps.Keys(want.Annotations))}
	if len(now.Labels)+len(now.Annotations) == 0 {
		if _, ok := annotations[AppliedMetadataAnnotation]; ok {
			delete(annotations, AppliedMetadataAnnotation)
			achanged = true
		}
	} else {
		raw, _ := json.Marshal(now)
		if annotations == nil {
			annotations = map[string]string{}
		}
		if annotations[AppliedMetadataAnnotation] != string(raw) {
			annotations[AppliedMetadataAnnotation] = string(raw)
			achanged = true
		}
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	obj.SetLabels(labels)
	obj.SetAnnotations(annotations)
	return lchanged || achanged
}

// syncMap returns have with want set and the keys of before that want no
// longer has removed, and whether that changed anything.
func syncMap(have, want map[string]string, before []string) (map[string]string, bool) {
	out := maps.Clone(have)
	changed := false
	for _, k := range before {
		if _, keep := want[k]; !keep {
			if _, ok := out[k]; ok {
				delete(out, k)
				changed = true
			}
		}
	}
	for k, v := range want {
		if out == nil {
			out = map[string]string{}
		}
		if cur, ok := out[k]; !ok || cur != v {
			out[k] = v
			changed = true
		}
	}
	return out, changed
}
