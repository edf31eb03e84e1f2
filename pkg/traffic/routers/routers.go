// Package routers chooses the traffic router a Rollout asks for, and checks
// that the API server serves the kinds it needs.
package routers

import (
	"fmt"

	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/traffic/gatewayapi"
	"github.com/sluice-dev/sluice/pkg/traffic/istio"
	"github.com/sluice-dev/sluice/pkg/traffic/kubernetes"
)

// requirement is a kind a router needs the API server to serve.
type requirement struct {
	gvk schema.GroupVersionKind
	crd string
}

var (
	httpRoute       = requirement{gwv1.SchemeGroupVersion.WithKind("HTTPRoute"), "httproutes.gateway.networking.k8s.io"}
	grpcRoute       = requirement{gwv1.SchemeGroupVersion.WithKind("GRPCRoute"), "grpcroutes.gateway.networking.k8s.io"}
	virtualService  = requirement{istiov1.SchemeGroupVersion.WithKind("VirtualService"), "virtualservices.networking.istio.io"}
	destinationRule = requirement{istiov1.SchemeGroupVersion.WithKind("DestinationRule"), "destinationrules.networking.istio.io"}
)

// Set holds one instance of each router.
type Set struct {
	kubernetes *kubernetes.Router
	gatewayAPI *gatewayapi.Router
	grpcRoute  *gatewayapi.Router
	istio      *istio.Router
	mapper     meta.RESTMapper
}

// New returns the routers, sharing one client; mapper tells which kinds the
// API server serves (a CRD installed later is found without a restart).
func New(c client.Client, mapper meta.RESTMapper) *Set {
	return &Set{
		kubernetes: &kubernetes.Router{Client: c},
		gatewayAPI: &gatewayapi.Router{Client: c},
		grpcRoute:  &gatewayapi.Router{Client: c, GRPC: true},
		istio:      &istio.Router{Client: c},
		mapper:     mapper,
	}
}

// For returns the router of a Rollout's routing field, or an error naming
// the CRD that is missing; the Rollout is then Stalled with that message.
func (s *Set) For(ro *sluicev1.Rollout) (traffic.Router, error) {
	r := ro.Spec.Routing
	switch {
	case r == nil || (r.GatewayAPI == nil && r.Istio == nil):
		return s.kubernetes, nil
	case r.GatewayAPI != nil && r.GatewayAPI.RouteKind == "GRPCRoute":
		return s.grpcRoute, s.require("routing.gatewayAPI.routeKind: GRPCRoute", grpcRoute)
	case r.GatewayAPI != nil:
		return s.gatewayAPI, s.require("routing.gatewayAPI", httpRoute)
	default:
		return s.istio, s.require("routing.istio", virtualService, destinationRule)
	}
}

func (s *Set) require(field string, reqs ...requirement) error {
	for _, req := range reqs {
		_, err := s.mapper.RESTMapping(req.gvk.GroupKind(), req.gvk.Version)
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("%s needs the CRD %s (%s), which is not installed in this cluster", field, req.crd, req.gvk.GroupVersion())
		}
		if err != nil {
			return fmt.Errorf("%s: checking for the CRD %s: %w", field, req.crd, err)
		}
	}
	return nil
}

// Watched returns the route kinds to watch for a router: Sluice watches a
// router's kinds only once a Rollout uses that router.
func Watched(routerName string) []client.Object {
	switch routerName {
	case "gatewayAPI":
		return []client.Object{&gwv1.HTTPRoute{}}
	case "gatewayAPI/GRPCRoute":
		return []client.Object{&gwv1.GRPCRoute{}}
	case "istio":
		// DestinationRules too: Sluice generates them and puts back an edit.
		return []client.Object{&istiov1.VirtualService{}, &istiov1.DestinationRule{}}
	}
	return nil
}

// IsRouterCRD reports whether a CRD name is one a router needs.
func IsRouterCRD(name string) bool {
	for _, req := range []requirement{httpRoute, grpcRoute, virtualService, destinationRule} {
		if req.crd == name {
			return true
		}
	}
	return false
}
