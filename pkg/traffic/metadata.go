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
// It never writes to the maps it reads: a change sets new ones.
func SyncMetadata(obj metav1.Object, want *sluicev1.ServiceMetadata) bool {
	labels, annotations, changed := syncedMetadata(obj.GetLabels(), obj.GetAnnotations(), want)
	if changed {
		obj.SetLabels(labels)
		obj.SetAnnotations(annotations)
	}
	return changed
}

// MetadataChanged reports whether SyncMetadata would change obj, without
// changing it: obj may be the cache's own. Nearly every reconcile finds
// nothing to change, and so copies nothing.
func MetadataChanged(obj metav1.Object, want *sluicev1.ServiceMetadata) bool {
	_, _, changed := syncedMetadata(obj.GetLabels(), obj.GetAnnotations(), want)
	return changed
}

// syncedMetadata returns the labels and annotations SyncMetadata sets, and
// whether they differ from those given.
func syncedMetadata(labels, annotations map[string]string, want *sluicev1.ServiceMetadata) (map[string]string, map[string]string, bool) {
	if want == nil {
		want = &noMetadata
	}
	before := appliedBefore(annotations)
	// The record of what was applied is one more annotation Sluice owns:
	// set with the user's, or removed with the keys they no longer want.
	wantAnnotations, goneAnnotations := want.Annotations, before.Annotations
	switch {
	case len(want.Labels)+len(want.Annotations) > 0:
		raw, _ := json.Marshal(appliedKeys{Labels: slices.Sorted(maps.Keys(want.Labels)), Annotations: slices.Sorted(maps.Keys(want.Annotations))})
		wantAnnotations = maps.Clone(want.Annotations)
		if wantAnnotations == nil {
			wantAnnotations = map[string]string{}
		}
		wantAnnotations[AppliedMetadataAnnotation] = string(raw)
	case len(goneAnnotations) == 0:
		goneAnnotations = onlyTheRecord
	default:
		goneAnnotations = append(slices.Clip(goneAnnotations), AppliedMetadataAnnotation)
	}
	labels, lchanged := syncMap(labels, want.Labels, before.Labels)
	annotations, achanged := syncMap(annotations, wantAnnotations, goneAnnotations)
	return labels, annotations, lchanged || achanged
}

// appliedBefore reads the record of the keys applied before. A value that
// does not parse is taken as nothing applied.
func appliedBefore(annotations map[string]string) appliedKeys {
	raw, ok := annotations[AppliedMetadataAnnotation]
	if !ok {
		return appliedKeys{}
	}
	var keys appliedKeys
	_ = json.Unmarshal([]byte(raw), &keys)
	return keys
}

// noMetadata is what a spec without metadata wants; it is only read.
var noMetadata sluicev1.ServiceMetadata

// onlyTheRecord is what to remove when nothing was applied and nothing is
// wanted: the record alone, if someone left one.
var onlyTheRecord = []string{AppliedMetadataAnnotation}

// syncMap returns have with want set and the keys of gone that want does
// not have removed, and whether that changed anything. have itself is
// never written: a change is made on a copy.
func syncMap(have, want map[string]string, gone []string) (map[string]string, bool) {
	var out map[string]string
	edit := func() map[string]string {
		if out == nil {
			out = maps.Clone(have)
			if out == nil {
				out = map[string]string{}
			}
		}
		return out
	}
	for _, k := range gone {
		if _, keep := want[k]; keep {
			continue
		}
		if _, ok := have[k]; ok {
			delete(edit(), k)
		}
	}
	for k, v := range want {
		if cur, ok := have[k]; !ok || cur != v {
			edit()[k] = v
		}
	}
	if out == nil {
		return have, false
	}
	if len(out) == 0 {
		// No labels or annotations left: none, rather than an empty map.
		return nil, true
	}
	return out, true
}
