// Package routers chooses the traffic router a Rollout asks for.
package routers

import (
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/traffic/kubernetes"
)

// Set holds one instance of each router this manager can use.
type Set struct {
	kubernetes *kubernetes.Router
}

// New returns the routers, sharing one client.
func New(c client.Client) *Set {
	return &Set{kubernetes: &kubernetes.Router{Client: c}}
}

// For returns the router of a Rollout's routing field, or an error naming
// what is missing; the Rollout is then Stalled with that message.
func (s *Set) For(ro *sluicev1.Rollout) (traffic.Router, error) {
	r := ro.Spec.Routing
	switch {
	case r == nil || (r.GatewayAPI == nil && r.Istio == nil):
		return s.kubernetes, nil
	case r.GatewayAPI != nil:
		return nil, fmt.Errorf("routing.gatewayAPI: the Gateway API router is not available in this build of Sluice")
	default:
		return nil, fmt.Errorf("routing.istio: the Istio router is not available in this build of Sluice")
	}
}
