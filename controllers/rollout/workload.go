package rollout

import (
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
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
