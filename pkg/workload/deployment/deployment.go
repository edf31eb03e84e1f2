// Package deployment is the apps/v1 Deployment kind of workload: the
// Deployments a Rollout releases and the primaries it builds from them.
package deployment

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// Kind is the Deployment kind.
type Kind struct{}

var _ workload.Kind = Kind{}

// Kind implements workload.Kind.
func (Kind) Kind() string { return "Deployment" }

// New implements workload.Kind.
func (Kind) New() client.Object { return &appsv1.Deployment{} }

// Wrap implements workload.Kind; obj must be a *appsv1.Deployment.
func (Kind) Wrap(obj client.Object) workload.Workload {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		panic(fmt.Sprintf("deployment.Kind.Wrap: not a Deployment: %T", obj))
	}
	return Of(d)
}

// BuildPrimary implements workload.Kind (see BuildPrimary).
func (Kind) BuildPrimary(target workload.Workload, p workload.Primary) workload.Workload {
	return Of(BuildPrimary(target.(*Workload).D, p))
}

// Workload is a Deployment as a workload.Workload.
type Workload struct {
	// D is the Deployment itself.
	D *appsv1.Deployment
}

var _ workload.Workload = (*Workload)(nil)

// Of returns d as a workload.Workload.
func Of(d *appsv1.Deployment) *Workload { return &Workload{D: d} }

// Object implements workload.Workload.
func (w *Workload) Object() client.Object { return w.D }

// Selectors implements workload.Workload.
func (w *Workload) Selectors() (canary, primary map[string]string, err error) {
	return Selectors(w.D)
}

// MatchLabels implements workload.Workload.
func (w *Workload) MatchLabels() map[string]string {
	if w.D.Spec.Selector == nil {
		return nil
	}
	return w.D.Spec.Selector.MatchLabels
}

// Template implements workload.Workload.
func (w *Workload) Template() *corev1.PodTemplateSpec { return &w.D.Spec.Template }

// Replicas implements workload.Workload.
func (w *Workload) Replicas() int32 { return Replicas(w.D) }

// SetReplicas implements workload.Workload.
func (w *Workload) SetReplicas(n int32) { w.D.Spec.Replicas = &n }

// Ready implements workload.Workload.
func (w *Workload) Ready(percent int32) (bool, string) { return Ready(w.D, percent) }

// Available implements workload.Workload.
func (w *Workload) Available() int32 { return w.D.Status.AvailableReplicas }

// TakeSpec implements workload.Workload.
func (w *Workload) TakeSpec(built workload.Workload) {
	b := built.(*Workload).D
	w.D.Spec = b.Spec
	w.D.Labels = b.Labels
}

// DeepCopy implements workload.Workload.
func (w *Workload) DeepCopy() workload.Workload { return Of(w.D.DeepCopy()) }
