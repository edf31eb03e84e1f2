// Package autoscaling gives a Rollout's primary Deployment its own copy of
// the autoscaler the user put on the target, and keeps that autoscaler from
// scaling the target up while Sluice parks it at zero replicas.
//
// One small interface, Kind, with one package per kind: hpa
// (HorizontalPodAutoscaler, autoscaling/v2) and keda (KEDA's ScaledObject,
// read as unstructured so the root module does not depend on KEDA). Kinds
// are pure: they read the user's object and build the copy. Autoscaler does
// the reading and writing, the same for every kind.
//
// The copy is built from the user's spec as it was at the last promotion
// (kept on the copy in SourceAnnotation): a new scaling policy is part of
// what is released, and must not reach the stable version untested.
package autoscaling

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Kind is one kind of autoscaler: pure functions from the user's object to
// the primary's copy.
type Kind interface {
	// Kind is the kind as autoscalerRef.kind names it.
	Kind() string
	// GroupVersionKind of the kind's objects.
	GroupVersionKind() schema.GroupVersionKind
	// CRD names the CRD that serves the kind; "" for a built-in kind.
	CRD() string
	// New returns an empty object of the kind, its GroupVersionKind set.
	New() client.Object
	// Read returns what Sluice needs of an autoscaler of the kind, or an
	// error saying why Sluice cannot copy it.
	Read(obj client.Object) (Source, error)
	// Build returns the primary's copy of an autoscaler whose spec (as Read
	// returned it) is spec; only its name, namespace and spec are set.
	Build(spec []byte, p Primary) (client.Object, error)
	// PauseAnnotation is the annotation (and its value) that keeps an
	// autoscaler of the kind from scaling a target parked at zero, or ""
	// when the kind leaves such a target alone by itself.
	PauseAnnotation() (key, value string)
}

// Source is what Sluice reads of an autoscaler.
type Source struct {
	// Spec is the autoscaler's spec as JSON: what a copy is built from.
	Spec []byte
	// ScaleTarget is the kind and name of the workload it scales.
	ScaleTarget ScaleTarget
	// MinReplicas and MaxReplicas are its bounds, defaults applied.
	MinReplicas, MaxReplicas int32
}

// ScaleTarget names the workload an autoscaler scales.
type ScaleTarget struct {
	Kind, Name string
}

// Primary is what a copy is built for.
type Primary struct {
	// Name and Namespace of the copy.
	Name, Namespace string
	// Deployment is the primary Deployment the copy scales.
	Deployment string
	// Replicas, when set, replaces the bounds of the user's autoscaler.
	Replicas *sluicev1.ScalerReplicas
	// Queries maps trigger names to the query that replaces theirs (KEDA).
	Queries map[string]string
}

// Annotations on the primary's copy. SourceAnnotation holds the user's spec
// the copy was built from, RevisionAnnotation the revision it was taken
// for; the Stable ones keep the source of the stable revision during a
// promotion, so that an abort puts it back with the primary's template.
// ChecksumAnnotation is the checksum of the spec Sluice wrote.
const (
	SourceAnnotation         = "sluice.dev/autoscaler-source"
	RevisionAnnotation       = "sluice.dev/revision"
	StableSourceAnnotation   = "sluice.dev/stable-autoscaler-source"
	StableRevisionAnnotation = "sluice.dev/stable-revision"
	ChecksumAnnotation       = "sluice.dev/autoscaler-checksum"
)

// CopyName is the name of the primary's copy of an autoscaler.
func CopyName(name string) string { return name + "-primary" }

// StalledError is an error only the user can fix (a missing autoscaler, a
// missing CRD, a copy that cannot be built); the Rollout is Stalled with it.
type StalledError struct {
	Reason  string
	Message string
}

func (e *StalledError) Error() string { return e.Message }

// Stalled reasons.
const (
	ReasonNotFound    = "AutoscalerNotFound"
	ReasonUnavailable = "AutoscalerUnavailable"
	ReasonInvalid     = "AutoscalerInvalid"
	ReasonConflict    = "AutoscalerConflict"
)

// primaryFor is the Primary a Rollout's copy is built for.
func primaryFor(t Target) Primary {
	ref := t.Rollout.Spec.AutoscalerRef
	return Primary{
		Name: CopyName(ref.Name), Namespace: t.Rollout.Namespace, Deployment: t.Primary,
		Replicas: ref.PrimaryScalerReplicas, Queries: ref.PrimaryScalerQueries,
	}
}

func checksum(spec []byte) string {
	sum := sha256.Sum256(spec)
	return hex.EncodeToString(sum[:])[:16]
}

// CheckBounds says why a copy's bounds are not valid, or returns nil.
func CheckBounds(kind string, minReplicas, maxReplicas int32) error {
	if minReplicas <= maxReplicas {
		return nil
	}
	return fmt.Errorf("the primary's %s would get minReplicas %d above maxReplicas %d: make autoscalerRef.primaryScalerReplicas consistent with the autoscaler's bounds",
		kind, minReplicas, maxReplicas)
}

// Bounds applies the overrides of p to an autoscaler's bounds.
func (p Primary) Bounds(minReplicas, maxReplicas int32) (int32, int32) {
	if r := p.Replicas; r != nil {
		if r.MinReplicas != nil {
			minReplicas = *r.MinReplicas
		}
		if r.MaxReplicas != nil {
			maxReplicas = *r.MaxReplicas
		}
	}
	return minReplicas, maxReplicas
}
