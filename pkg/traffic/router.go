// Package traffic defines how Sluice shifts traffic between the primary and
// the canary of a Rollout: one small Router interface, one package per router.
package traffic

import (
	"context"
	"errors"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Weights is the split of traffic between primary and canary, in percent.
type Weights struct {
	Primary int32
	Canary  int32
}

// ForCanary returns the split that gives the canary w percent.
func ForCanary(w int32) Weights { return Weights{Primary: 100 - w, Canary: w} }

// Target is what a router routes to: the Rollout and the names and selectors
// of its Services.
type Target struct {
	Rollout *sluicev1.Rollout
	// Apex, Primary and Canary are the Service names.
	Apex, Primary, Canary string
	// PrimarySelector and CanarySelector select the pods of each version.
	PrimarySelector, CanarySelector map[string]string
}

// ErrUnsupported is returned (wrapped) when a router cannot do what a
// Rollout asks of it, e.g. a 25% weight on the kubernetes router.
var ErrUnsupported = errors.New("not supported by this router")

// Router shifts traffic for one kind of routing.
type Router interface {
	// Name is the routing field this router serves: kubernetes, gatewayAPI, istio.
	Name() string
	// EnsureRoutes creates the router's objects, or adopts the user's, and
	// leaves weights already set as they are.
	EnsureRoutes(ctx context.Context, t Target) error
	// SetWeights brings the routes to w and returns the weights the API
	// server holds afterwards, read back from it.
	SetWeights(ctx context.Context, t Target, w Weights) (Weights, error)
	// Weights reads back the weights the API server holds; ok is false when
	// the routes do not exist or do not say.
	Weights(ctx context.Context, t Target) (w Weights, ok bool, err error)
	// Finalize removes the objects the router created (never a user's).
	Finalize(ctx context.Context, t Target) error
}
