package workload

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kind is one kind of workload that a Rollout releases (targetRef.kind):
// pure functions over its objects, with no client. The reconciler reads the
// objects (in observe) and writes them (in act) through its own client, the
// same way for every kind.
type Kind interface {
	// Kind is the kind as targetRef.kind names it.
	Kind() string
	// New returns an empty object of the kind, to read one into.
	New() client.Object
	// Wrap returns the Workload of an object of the kind, as New returned
	// it; the Workload and the object are one.
	Wrap(obj client.Object) Workload
	// BuildPrimary returns the primary of a target at p.Revision: the
	// target's spec with the primary's selector and p.Replicas, the pod
	// selectors of its spread constraints and pod (anti-)affinity turned to
	// the primary's pods (Relabel), references to copied ConfigMaps and
	// Secrets renamed to their copies (RenameConfigRefs), and the revision
	// on the object and on its pod template. It is named PrimaryName of the
	// target, labelled with RolloutLabel, and owned by no one yet.
	BuildPrimary(target Workload, p Primary) Workload
}

// Workload is one object of a workload kind: a Rollout's target or its
// primary. Its setters change the object in memory only; the reconciler
// writes it.
type Workload interface {
	// Object is the API object, to read, write or own.
	Object() client.Object
	// Selectors returns the label selectors of the canary (a target's own)
	// and of the primary (the same keys, values suffixed with -primary), so
	// that the two sets of pods never match each other's Service; or an
	// error, for the user, saying why Sluice cannot split the target's pods.
	Selectors() (canary, primary map[string]string, err error)
	// MatchLabels is the matchLabels of its pod selector (nil when none).
	MatchLabels() map[string]string
	// Template is its pod template, to read or change in place.
	Template() *corev1.PodTemplateSpec
	// Replicas is how many pods it asks for.
	Replicas() int32
	// SetReplicas asks for n pods.
	SetReplicas(n int32)
	// Ready reports whether it runs all its pods at its current spec, with
	// at least percent of them available (100: all), with a message saying
	// why not.
	Ready(percent int32) (bool, string)
	// Available counts its available pods.
	Available() int32
	// TakeSpec gives it the spec and labels of a primary that BuildPrimary
	// returned; the rest of its metadata stays.
	TakeSpec(built Workload)
	// DeepCopy returns a copy, object included.
	DeepCopy() Workload
}

// RevisionOf returns the revision a primary records (RevisionAnnotation), ""
// for a workload that records none.
func RevisionOf(w Workload) string { return w.Object().GetAnnotations()[RevisionAnnotation] }

// SetAnnotation sets an annotation of w's object.
func SetAnnotation(w Workload, key, value string) {
	o := w.Object()
	ann := o.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[key] = value
	o.SetAnnotations(ann)
}
