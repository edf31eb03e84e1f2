package rollout

import (
	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// routeTarget names the Services of a Rollout: the apex Service is
// service.name (the target's name by default); the -primary and -canary
// Services are named after the target, like the primary Deployment.
func routeTarget(ro *sluicev1.Rollout) traffic.Target {
	name := ro.Spec.TargetRef.Name
	return traffic.Target{Rollout: ro, Apex: ro.Spec.ApexServiceName(), Primary: workload.PrimaryName(name), Canary: name + "-canary"}
}
