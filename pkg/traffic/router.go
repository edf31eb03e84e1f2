// Package traffic defines how Sluice shifts traffic between the primary and
// the canary of a Rollout: one small Router interface, one package per router.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/ownwrites"
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
	// PrimaryPorts and CanaryPorts are the container ports declared in the
	// primary's and the target's pod templates, which the Services carry
	// with service.portDiscovery.
	PrimaryPorts, CanaryPorts []corev1.ContainerPort
	// PrimaryRolling is true while the primary may still run pods of an
	// earlier template: the apex and primary Services then keep the ports
	// they have, so that no port those pods serve is taken away from them.
	PrimaryRolling bool
	// PrimaryReady is true once the primary's pods are ready: a router's
	// apex Service then selects them (one Sluice adopted selects what it
	// selected before until then).
	PrimaryReady bool
}

// ErrUnsupported is returned (wrapped) when a router cannot do what a
// Rollout asks of it, e.g. a 25% weight on the kubernetes router.
var ErrUnsupported = errors.New("not supported by this router")

// Route is the traffic state a router holds for a Rollout.
type Route struct {
	Weights Weights
	// Experiment is true while a run is under way and the strategy adds
	// request rules: A/B matches, mirroring or session affinity.
	Experiment bool
	// Revision is the canary revision while Experiment is true; it keys the
	// session-affinity cookie so a cookie of an earlier run matches nothing.
	Revision string
}

// Applied is what a router found and left after Apply.
type Applied struct {
	// Route is what the API server holds after the write, read back.
	Route Route
	// Drifted is true when the router found its objects changed by someone
	// else since it last wrote them (and put them back).
	Drifted bool
}

// Router shifts traffic for one kind of routing.
type Router interface {
	// Name is the routing field this router serves: kubernetes, gatewayAPI, istio.
	Name() string
	// EnsureRoutes creates the router's objects, or adopts the user's, and
	// leaves a route already set as it is.
	EnsureRoutes(ctx context.Context, t Target) error
	// Apply brings the routes to r and reads them back from the API server.
	Apply(ctx context.Context, t Target, r Route) (Applied, error)
	// Observe reads back the route the API server holds; ok is false when
	// the routes do not exist or do not say.
	Observe(ctx context.Context, t Target) (r Route, ok bool, err error)
	// Finalize runs when the Rollout is deleted: with revert, all traffic
	// goes to the target (through the apex Service) and the routes are kept;
	// without it, generated routes are deleted and adopted ones handed back
	// pointing at the apex Service.
	Finalize(ctx context.Context, t Target, revert bool) error
}

// NotCachedYet is the error of an Apply that did not find its route object
// (the apex Service, an HTTPRoute, a VirtualService) in the cache. Apply
// runs only after EnsureRoutes and EnsureServices have made sure it
// exists, creating it if need be, so a NotFound then is the cache not
// having caught up with that creation (ownwrites.ErrBehind: look again once
// it has), not an error to tell. Other errors are returned as they are.
func NotCachedYet(err error, what string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s is not in the cache yet: %w", what, ownwrites.ErrBehind)
	}
	return err
}

// CreateRefused is the error of a create of a route object (an HTTPRoute, a
// VirtualService, a DestinationRule) that the API server refused as
// existing: the cache, which holds every object of its kind in the
// namespace, did not have it when the router looked. So the cache is
// behind (on a create the client no longer remembers, or someone else's):
// look again once it has caught up (ownwrites.ErrBehind), and the object
// is found then, and told apart as the Rollout's own or someone else's.
// Not an error to tell. Other errors are returned as they are.
func CreateRefused(err error, what string) error {
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%s exists but is not in the cache yet: %w", what, ownwrites.ErrBehind)
	}
	return err
}

// RouteAnnotation on a route object records the Route Sluice last wrote, to
// tell a change by someone else from Sluice's own.
const RouteAnnotation = "sluice.dev/route"

// String encodes a Route for RouteAnnotation.
func (r Route) String() string {
	if !r.Experiment {
		return fmt.Sprintf("canary=%d", r.Weights.Canary)
	}
	return fmt.Sprintf("canary=%d,experiment=%s", r.Weights.Canary, r.Revision)
}

// ParseRoute decodes a RouteAnnotation value.
func ParseRoute(s string) (Route, bool) {
	var r Route
	if _, err := fmt.Sscanf(s, "canary=%d", &r.Weights.Canary); err != nil {
		return Route{}, false
	}
	r.Weights.Primary = 100 - r.Weights.Canary
	if i := strings.Index(s, ",experiment="); i >= 0 {
		r.Experiment, r.Revision = true, s[i+len(",experiment="):]
	}
	return r, true
}

// StalledError is an error only the user can fix (a missing route, a name
// taken by someone else's object); the Rollout is Stalled with its message.
type StalledError struct {
	Reason  string
	Message string
}

func (e *StalledError) Error() string { return e.Message }

// ShiftingLabel is set, to "true", on a route object (HTTPRoute,
// VirtualService, generated or adopted) while Sluice holds it away from its
// resting state: some weight on the canary, or experiment rules in place.
// It is removed when the route is back to all traffic on the primary, at
// promotion and at rollback. GitOps tooling and people can select routes
// mid-run with it (docs/gitops.md).
const ShiftingLabel = "sluice.dev/shifting"

// Shifting reports whether a Route is one only a run holds.
func (r Route) Shifting() bool { return r.Weights.Canary != 0 || r.Experiment }

// SyncShiftingLabel returns labels with ShiftingLabel set for r, or removed,
// and whether that changed them; labels itself is not modified.
func SyncShiftingLabel(labels map[string]string, r Route) (map[string]string, bool) {
	_, has := labels[ShiftingLabel]
	if r.Shifting() == has && (!has || labels[ShiftingLabel] == "true") {
		return labels, false
	}
	out := maps.Clone(labels)
	if r.Shifting() {
		if out == nil {
			out = map[string]string{}
		}
		out[ShiftingLabel] = "true"
	} else {
		delete(out, ShiftingLabel)
	}
	return out, true
}
