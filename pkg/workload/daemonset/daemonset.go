// Package daemonset is the apps/v1 DaemonSet kind of workload: the
// DaemonSets a Rollout releases and the primaries it builds from them.
//
// A DaemonSet has no replica count: it runs one pod on each node it selects.
// Sluice parks the target between releases by requiring a node label no
// node carries (workload.Park), so that it runs no pod, and unparks it for a
// run, when it runs on every node the user's spec selects. Its replica
// count, as the reconciler reads it, is 0 while parked and otherwise the
// number of nodes the DaemonSet controller schedules it on; asking for any
// count above zero asks for all of them (whole nodes only). The primary is
// never parked.
package daemonset

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// Kind is the DaemonSet kind.
type Kind struct{}

var _ workload.Kind = Kind{}

// Kind implements workload.Kind.
func (Kind) Kind() string { return "DaemonSet" }

// New implements workload.Kind.
func (Kind) New() client.Object { return &appsv1.DaemonSet{} }

// Wrap implements workload.Kind; obj must be a *appsv1.DaemonSet.
func (Kind) Wrap(obj client.Object) workload.Workload {
	d, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		panic(fmt.Sprintf("daemonset.Kind.Wrap: not a DaemonSet: %T", obj))
	}
	return Of(d)
}

// BuildPrimary implements workload.Kind (see BuildPrimary); p.Replicas does
// not apply to a DaemonSet.
func (Kind) BuildPrimary(target workload.Workload, p workload.Primary) workload.Workload {
	return Of(BuildPrimary(target.(*Workload).D, p))
}

// Workload is a DaemonSet as a workload.Workload.
type Workload struct {
	// D is the DaemonSet itself.
	D *appsv1.DaemonSet
}

var _ workload.Workload = (*Workload)(nil)

// Of returns d as a workload.Workload.
func Of(d *appsv1.DaemonSet) *Workload { return &Workload{D: d} }

// Object implements workload.Workload.
func (w *Workload) Object() client.Object { return w.D }

// Selectors implements workload.Workload: the split of Selectors, or why
// this DaemonSet cannot be released (CanSplit).
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

// Replicas implements workload.Workload: 0 while parked, else the number of
// nodes the DaemonSet controller schedules it on, and at least 1 (a
// DaemonSet that selects no node, or whose controller has not counted its
// nodes yet, still asks to run).
func (w *Workload) Replicas() int32 { return Replicas(w.D) }

// SetReplicas implements workload.Workload: 0 parks the DaemonSet, any
// other count unparks it (it then runs on every node its spec selects).
// A primary (controlled by a Rollout) is never parked: 0 leaves it as it is.
func (w *Workload) SetReplicas(n int32) {
	switch {
	case n > 0:
		workload.Unpark(&w.D.Spec.Template.Spec)
	case !isPrimary(w.D):
		workload.Park(&w.D.Spec.Template.Spec)
	}
}

// Ready implements workload.Workload.
func (w *Workload) Ready(percent int32) (bool, string) { return Ready(w.D, percent) }

// Available implements workload.Workload: the nodes that run an available
// pod of it.
func (w *Workload) Available() int32 { return w.D.Status.NumberAvailable }

// TakeSpec implements workload.Workload.
func (w *Workload) TakeSpec(built workload.Workload) {
	b := built.(*Workload).D
	w.D.Spec = b.Spec
	w.D.Labels = b.Labels
}

// DeepCopy implements workload.Workload.
func (w *Workload) DeepCopy() workload.Workload { return Of(w.D.DeepCopy()) }

// isPrimary reports whether d is controlled by a Rollout, as a primary is.
func isPrimary(d *appsv1.DaemonSet) bool {
	ref := metav1.GetControllerOf(d)
	return ref != nil && ref.Kind == "Rollout" && strings.HasPrefix(ref.APIVersion, "sluice.dev/")
}
