package rollout

import (
	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
)

// workloadKinds are the kinds of workload a Rollout can target (pkg/workload).
var workloadKinds = []workload.Kind{deployment.Kind{}}

// workloadKind returns the kind of a Rollout's target. The API server
// admits Deployments only (targetRef.kind), the first kind.
func workloadKind(ro *sluicev1.Rollout) workload.Kind {
	for _, k := range workloadKinds {
		if k.Kind() == ro.Spec.TargetRef.Kind {
			return k
		}
	}
	return workloadKinds[0]
}
