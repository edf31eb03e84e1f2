// Package hpa copies a HorizontalPodAutoscaler (autoscaling/v2) for a
// Rollout's primary.
//
// A HorizontalPodAutoscaler leaves a Deployment at zero replicas alone: the
// HPA controller skips a target whose current replica count is 0 (condition
// ScalingActive=False, reason ScalingDisabled) unless minReplicas is 0, which
// only the alpha HPAScaleToZero feature allows. So the user's HPA needs no
// pause while Sluice parks the target, and an HPA with minReplicas 0 is
// refused: it would scale the parked target up.
package hpa

import (
	"encoding/json"
	"errors"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/autoscaling"
)

// Kind is the HorizontalPodAutoscaler kind.
type Kind struct{}

var _ autoscaling.Kind = Kind{}

// Kind implements autoscaling.Kind.
func (Kind) Kind() string { return "HorizontalPodAutoscaler" }

// GroupVersionKind implements autoscaling.Kind.
func (Kind) GroupVersionKind() schema.GroupVersionKind {
	return autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler")
}

// CRD implements autoscaling.Kind: the kind is built in.
func (Kind) CRD() string { return "" }

// New implements autoscaling.Kind.
func (k Kind) New() client.Object {
	h := &autoscalingv2.HorizontalPodAutoscaler{}
	h.SetGroupVersionKind(k.GroupVersionKind())
	return h
}

// PauseAnnotation implements autoscaling.Kind: none is needed.
func (Kind) PauseAnnotation() (string, string) { return "", "" }

// Read implements autoscaling.Kind.
func (Kind) Read(obj client.Object) (autoscaling.Source, error) {
	h, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return autoscaling.Source{}, fmt.Errorf("not a HorizontalPodAutoscaler: %T", obj)
	}
	minReplicas := int32(1)
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	if minReplicas == 0 {
		return autoscaling.Source{}, errors.New("minReplicas 0 lets it scale the target up from zero while Sluice parks it there: set minReplicas to at least 1")
	}
	spec, err := json.Marshal(h.Spec)
	if err != nil {
		return autoscaling.Source{}, err
	}
	ref := h.Spec.ScaleTargetRef
	return autoscaling.Source{
		Spec:        spec,
		ScaleTarget: autoscaling.ScaleTarget{Kind: ref.Kind, Name: ref.Name},
		MinReplicas: minReplicas, MaxReplicas: h.Spec.MaxReplicas,
	}, nil
}

// Build implements autoscaling.Kind: the user's spec, scaling the primary
// Deployment, with the primary's bounds.
func (k Kind) Build(spec []byte, p autoscaling.Primary) (client.Object, error) {
	h := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
	h.SetGroupVersionKind(k.GroupVersionKind())
	if err := json.Unmarshal(spec, &h.Spec); err != nil {
		return nil, fmt.Errorf("reading the HorizontalPodAutoscaler spec: %w", err)
	}
	h.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: p.Deployment}
	minReplicas := int32(1)
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	minReplicas, h.Spec.MaxReplicas = p.Bounds(minReplicas, h.Spec.MaxReplicas)
	h.Spec.MinReplicas = &minReplicas
	if err := autoscaling.CheckBounds(k.Kind(), minReplicas, h.Spec.MaxReplicas); err != nil {
		return nil, err
	}
	return h, nil
}
