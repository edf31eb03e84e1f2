// Package keda copies a KEDA ScaledObject (keda.sh/v1alpha1) for a
// Rollout's primary. ScaledObjects are handled as unstructured objects, so
// Sluice does not depend on KEDA's Go module.
//
// What Sluice relies on of KEDA (v2.8 and later):
//   - the annotation autoscaling.keda.sh/paused-replicas: KEDA then stops
//     the ScaledObject's scale loop, deletes the HPA it made for it, and
//     holds the target at that many replicas; removing the annotation
//     resumes scaling. Sluice sets it to "0" on the user's ScaledObject
//     while the target is parked (without it KEDA would scale the parked
//     target back up to minReplicaCount, or on activity), and removes it
//     while a run scales the target up;
//   - the defaults of an unset minReplicaCount (0), maxReplicaCount (100)
//     and scaleTargetRef.kind (Deployment);
//   - advanced.horizontalPodAutoscalerConfig.name naming the HPA KEDA
//     makes: the primary's copy gets its own, or the two would share one.
package keda

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/autoscaling"
)

// PausedReplicasAnnotation pauses a ScaledObject at a replica count.
const PausedReplicasAnnotation = "autoscaling.keda.sh/paused-replicas"

// KEDA's defaults for unset bounds.
const (
	defaultMinReplicas = 0
	defaultMaxReplicas = 100
)

// Kind is the ScaledObject kind.
type Kind struct{}

var _ autoscaling.Kind = Kind{}

// Kind implements autoscaling.Kind.
func (Kind) Kind() string { return "ScaledObject" }

// GroupVersionKind implements autoscaling.Kind.
func (Kind) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}
}

// CRD implements autoscaling.Kind.
func (Kind) CRD() string { return "scaledobjects.keda.sh" }

// New implements autoscaling.Kind.
func (k Kind) New() client.Object {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.GroupVersionKind())
	return u
}

// PauseAnnotation implements autoscaling.Kind: a ScaledObject paused at
// zero replicas keeps the parked target there.
func (Kind) PauseAnnotation() (string, string) { return PausedReplicasAnnotation, "0" }

// Read implements autoscaling.Kind.
func (Kind) Read(obj client.Object) (autoscaling.Source, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return autoscaling.Source{}, fmt.Errorf("not an unstructured ScaledObject: %T", obj)
	}
	spec, _, err := unstructured.NestedMap(u.Object, "spec")
	if err != nil {
		return autoscaling.Source{}, fmt.Errorf("reading spec: %w", err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return autoscaling.Source{}, err
	}
	kind, _, _ := unstructured.NestedString(spec, "scaleTargetRef", "kind")
	if kind == "" {
		kind = "Deployment"
	}
	name, _, _ := unstructured.NestedString(spec, "scaleTargetRef", "name")
	minReplicas, err := replicas(spec, "minReplicaCount", defaultMinReplicas)
	if err != nil {
		return autoscaling.Source{}, err
	}
	maxReplicas, err := replicas(spec, "maxReplicaCount", defaultMaxReplicas)
	if err != nil {
		return autoscaling.Source{}, err
	}
	return autoscaling.Source{
		Spec:        raw,
		ScaleTarget: autoscaling.ScaleTarget{Kind: kind, Name: name},
		MinReplicas: minReplicas, MaxReplicas: maxReplicas,
	}, nil
}

func replicas(spec map[string]any, field string, def int32) (int32, error) {
	v, ok, _ := unstructured.NestedFieldNoCopy(spec, field)
	if !ok || v == nil {
		return def, nil
	}
	switch n := v.(type) {
	case int64:
		return int32(n), nil
	case float64:
		// Decoded by a plain JSON decoder.
		return int32(n), nil
	}
	return 0, fmt.Errorf("%s is a %T, not a number", field, v)
}

// Build implements autoscaling.Kind: the user's spec, scaling the primary
// Deployment, with the primary's bounds, its own HPA name when the user
// named KEDA's HPA, and the queries of the named triggers replaced.
func (k Kind) Build(spec []byte, p autoscaling.Primary) (client.Object, error) {
	s := map[string]any{}
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, fmt.Errorf("reading the ScaledObject spec: %w", err)
	}
	ref, _, _ := unstructured.NestedMap(s, "scaleTargetRef")
	if ref == nil {
		ref = map[string]any{}
	}
	ref["apiVersion"], ref["kind"], ref["name"] = "apps/v1", "Deployment", p.Deployment
	s["scaleTargetRef"] = ref

	minReplicas, err := replicas(s, "minReplicaCount", defaultMinReplicas)
	if err != nil {
		return nil, err
	}
	maxReplicas, err := replicas(s, "maxReplicaCount", defaultMaxReplicas)
	if err != nil {
		return nil, err
	}
	if p.Replicas != nil {
		minReplicas, maxReplicas = p.Bounds(minReplicas, maxReplicas)
		s["minReplicaCount"], s["maxReplicaCount"] = int64(minReplicas), int64(maxReplicas)
	}
	if err := autoscaling.CheckBounds(k.Kind(), minReplicas, maxReplicas); err != nil {
		return nil, err
	}
	if hpaName, ok, _ := unstructured.NestedString(s, "advanced", "horizontalPodAutoscalerConfig", "name"); ok && hpaName != "" {
		if err := unstructured.SetNestedField(s, autoscaling.CopyName(hpaName), "advanced", "horizontalPodAutoscalerConfig", "name"); err != nil {
			return nil, err
		}
	}
	if err := rewriteQueries(s, p.Queries); err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": s}}
	u.SetGroupVersionKind(k.GroupVersionKind())
	u.SetName(p.Name)
	u.SetNamespace(p.Namespace)
	return u, nil
}

// rewriteQueries replaces the query metadata of the named triggers.
func rewriteQueries(spec map[string]any, queries map[string]string) error {
	if len(queries) == 0 {
		return nil
	}
	triggers, _, err := unstructured.NestedSlice(spec, "triggers")
	if err != nil {
		return fmt.Errorf("reading triggers: %w", err)
	}
	done := map[string]bool{}
	var names []string
	for i, t := range triggers {
		trigger, ok := t.(map[string]any)
		if !ok {
			continue
		}
		name, _, _ := unstructured.NestedString(trigger, "name")
		if name != "" {
			names = append(names, name)
		}
		query, ok := queries[name]
		if !ok || name == "" {
			continue
		}
		if _, has, _ := unstructured.NestedString(trigger, "metadata", "query"); !has {
			typ, _, _ := unstructured.NestedString(trigger, "type")
			return fmt.Errorf("primaryScalerQueries names trigger %q, which has no query metadata (type %s)", name, typ)
		}
		if err := unstructured.SetNestedField(trigger, query, "metadata", "query"); err != nil {
			return err
		}
		triggers[i], done[name] = trigger, true
	}
	var missing []string
	for name := range queries {
		if !done[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("primaryScalerQueries names triggers %v that the ScaledObject does not have (its named triggers: %v)", missing, names)
	}
	spec["triggers"] = triggers
	return nil
}
