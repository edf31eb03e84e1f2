package rollout

import (
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

// StripWorkload is the cache transform for Deployments and DaemonSets,
// every one of the cluster's (any can become a target). It drops two things
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
