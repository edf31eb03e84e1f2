package rollout

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/intern"
	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/daemonset"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
)

// workloadKinds are the kinds of workload a Rollout can target (pkg/workload).
var workloadKinds = []workload.Kind{deployment.Kind{}, daemonset.Kind{}}

// scalable reports whether a kind has a replica count an autoscaler can
// scale (a DaemonSet runs one pod per node and has none).
func scalable(k workload.Kind) bool { return k.Kind() != (daemonset.Kind{}).Kind() }

// workloadKind returns the kind of a Rollout's target. The API server
// admits the kinds of workloadKinds only (targetRef.kind); anything else
// is read as the first, a Deployment.
func workloadKind(ro *sluicev1.Rollout) workload.Kind {
	for _, k := range workloadKinds {
		if k.Kind() == ro.Spec.TargetRef.Kind {
			return k
		}
	}
	return workloadKinds[0]
}

// canaryThreshold and primaryThreshold are the percent of each side's
// replicas that must be available for it to count as ready (100: all).
func canaryThreshold(ro *sluicev1.Rollout) int32 {
	return ptr.Deref(ro.Spec.CanaryReadyThreshold, 100)
}

func primaryThreshold(ro *sluicev1.Rollout) int32 {
	return ptr.Deref(ro.Spec.PrimaryReadyThreshold, 100)
}

// CachedWorkloads is the cache transform for Deployments and DaemonSets.
// The cache watches every one of the cluster's, since any can become a
// target, but keeps whole only those Sluice reads: the targets of Rollouts
// and the primaries they own. Every other is kept as its name, identity
// and owners, with no pod template (trimmed): 10,000 unrelated Deployments
// cost about 30 MiB whole (docs/performance.md).
//
// A workload cached trimmed before a Rollout targeted it is read from the
// API server while it stays so (getWorkload); its next change, the first
// of which is Sluice scaling it when the Rollout initializes, brings it
// whole into the cache.
type CachedWorkloads struct {
	// Rollouts reads the cached Rollouts through the target index; set
	// once the manager's cache exists. Until then, and whenever it cannot
	// answer, a workload is kept whole: the cost of a wrong answer is
	// memory, never a wrong read.
	Rollouts client.Reader

	// first lets only the first read wait for the Rollouts to be cached.
	first sync.Once
}

// Transform keeps a workload whole (StripWorkload) when a Rollout owns or
// targets it, and trims it otherwise.
func (c *CachedWorkloads) Transform(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	if ownedByRollout(o) || c.targeted(o) {
		return StripWorkload(o)
	}
	switch w := o.(type) {
	case *appsv1.Deployment:
		w.ObjectMeta, w.Spec, w.Status = trimmedMeta(&w.ObjectMeta), appsv1.DeploymentSpec{}, appsv1.DeploymentStatus{}
	case *appsv1.DaemonSet:
		w.ObjectMeta, w.Spec, w.Status = trimmedMeta(&w.ObjectMeta), appsv1.DaemonSetSpec{}, appsv1.DaemonSetStatus{}
	}
	return o, nil
}

// targeted asks the cached Rollouts of the workload's namespace whether
// one targets it by name. The first read, at the manager's start, waits
// for the Rollouts to be cached (as long as the manager waits for its
// caches), so that the workloads listed then are kept whole when a Rollout
// has them, and no Rollout reads its target from the API server after a
// restart. Later reads never wait: this runs in the informer's loop.
func (c *CachedWorkloads) targeted(o client.Object) bool {
	if c == nil || c.Rollouts == nil {
		return true
	}
	wait := 100 * time.Millisecond
	c.first.Do(func() { wait = 2 * time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var list sluicev1.RolloutList
	err := c.Rollouts.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{targetIndex: o.GetName()}, client.UnsafeDisableDeepCopy)
	return err != nil || len(list.Items) > 0
}

// ownedByRollout reports whether a Rollout controls o: a primary.
func ownedByRollout(o client.Object) bool {
	ref := metav1.GetControllerOfNoCopy(o)
	return ref != nil && ref.Kind == "Rollout" && ref.APIVersion == sluicev1.GroupVersion.String()
}

// trimmedMeta is what the cache keeps of a workload no Rollout uses: what
// identifies it and its owners (Owns maps a primary by them).
func trimmedMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
		OwnerReferences: m.OwnerReferences,
	}
}

// trimmed reports whether obj is the cache's trimmed copy of a workload:
// one without containers, which the API server never admits (a pod
// template needs one), so no user can make a workload look trimmed.
func trimmed(obj client.Object) bool {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return len(w.Spec.Template.Spec.Containers) == 0
	case *appsv1.DaemonSet:
		return len(w.Spec.Template.Spec.Containers) == 0
	}
	return false
}

// getWorkload reads a workload from the cache, or from the API server when
// the cache holds it trimmed (CachedWorkloads). Nothing Sluice reads,
// copies or writes back ever comes from a trimmed copy.
//
// What the cache returns shares its maps, slices and pointers with the
// cache's own object, not a deep copy: a reconcile reads the target and
// the primary every time and changes them seldom, and the copies were 8 %
// of the manager's allocations while releasing (docs/performance.md). So
// a workload read here is never changed in place: every write starts from
// its DeepCopy (setReplicas, scaledUp, promotePrimary).
func (r *Reconciler) getWorkload(ctx context.Context, kind workload.Kind, key client.ObjectKey) (client.Object, error) {
	obj := kind.New()
	if err := r.Get(ctx, key, obj, client.UnsafeDisableDeepCopy); err != nil || !trimmed(obj) {
		return obj, err
	}
	if r.APIReader == nil {
		return nil, fmt.Errorf("the cache holds %s %s trimmed and there is no API reader", kind.Kind(), key.Name)
	}
	obj = kind.New()
	return obj, r.APIReader.Get(ctx, key, obj)
}

// StripWorkload is what the cache transform (CachedWorkloads) does to a
// workload it keeps whole: a target or a primary. It drops two things
// Sluice never reads: kubectl's last-applied-configuration (a second copy
// of the whole object, often the largest part of it) and the status
// conditions. Everything Sluice copies, compares or writes back stays.
// Sluice updates a primary from its cached copy, and neither loss reaches
// the API server: an update leaves the status alone, and a primary Sluice
// built carries no last-applied-configuration.
func StripWorkload(obj any) (any, error) {
	o, ok := obj.(client.Object)
	if !ok {
		return obj, nil
	}
	o.SetManagedFields(nil)
	if ann := o.GetAnnotations(); ann != nil {
		delete(ann, corev1.LastAppliedConfigAnnotation)
	}
	switch w := o.(type) {
	case *appsv1.Deployment:
		w.Status.Conditions = nil
		shareTemplateStrings(w.Spec.Selector, &w.Spec.Template)
	case *appsv1.DaemonSet:
		w.Status.Conditions = nil
		shareTemplateStrings(w.Spec.Selector, &w.Spec.Template)
	}
	return o, nil
}

// shareTemplateStrings shares the label keys and values a workload repeats
// in its selector and pod template (and its primary repeats again) with the
// rest of the cache (internal/intern).
func shareTemplateStrings(sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec) {
	if sel != nil {
		sel.MatchLabels = intern.Map(sel.MatchLabels)
	}
	tmpl.Labels = intern.Map(tmpl.Labels)
	tmpl.Annotations = intern.Keys(tmpl.Annotations)
}
