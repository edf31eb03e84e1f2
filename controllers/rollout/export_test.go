package rollout

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// IndexRollouts registers the controller's cache indexes with mgr, for a
// test's Reconciler built without SetupWithManager.
func IndexRollouts(ctx context.Context, mgr ctrl.Manager) error { return indexRollouts(ctx, mgr) }

// Observed is what the observe step of a reconcile found.
type Observed struct {
	// Router is the name of the router resolved; empty when none was.
	Router                 string
	RoutedWeight           *int32
	Blocked, BlockedReason string
}

func (o Observed) String() string {
	w := "unknown"
	if o.RoutedWeight != nil {
		w = fmt.Sprint(*o.RoutedWeight)
	}
	return fmt.Sprintf("router %q, routed canary weight %s, blocked %q (%s)", o.Router, w, o.BlockedReason, o.Blocked)
}

// Observe runs the observe step of a reconcile of ro, and nothing else.
func (r *Reconciler) Observe(ctx context.Context, ro *sluicev1.Rollout) (Observed, error) {
	sc, err := r.observe(ctx, ro)
	if err != nil {
		return Observed{}, err
	}
	out := Observed{RoutedWeight: sc.obs.RoutedWeight, Blocked: sc.obs.Blocked, BlockedReason: sc.obs.BlockedReason}
	if sc.router != nil {
		out.Router = sc.router.Name()
	}
	return out, nil
}

// CachedRollouts lists the Rollouts of c as a scrape of their series does.
func CachedRollouts(c cache.Cache) func(context.Context) ([]*sluicev1.Rollout, error) {
	return cachedRollouts(c)
}
