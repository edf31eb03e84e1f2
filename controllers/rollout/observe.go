package rollout

import (
	"context"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/webhooks"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// missingChecksum stands for a required ConfigMap or Secret that does not
// exist; it becomes part of the revision, so its creation is a new revision.
const missingChecksum = "missing"

// inPlaceChecksum stands for a Secret the primary reads where it is, with
// no copy: a service account's token (kubernetes.io/service-account-token).
// The token controller keeps it, so its content is no release's, and the
// API server refuses a copy that names no service account (one that did
// would be a second token of that account). Reading it in place, the
// primary's pods see what the target's do; its content is left out of the
// revision.
const inPlaceChecksum = "in-place"

// scope is what one reconcile observed of a Rollout and its objects, and
// what it has done about them so far. observe fills it in, reading only;
// decideAndAct and act write, and keep it up to date with what they wrote.
type scope struct {
	ro *sluicev1.Rollout
	// kind is the kind of the target; target and primary are read through
	// it (pkg/workload).
	kind    workload.Kind
	target  workload.Workload // nil when not found
	primary workload.Workload // nil when not created yet
	// configs maps workload.ConfigRef keys to checksums (missingChecksum when a
	// required one is absent); optional absent ones are left out.
	configs map[string]string
	// read holds, by workload.ConfigRef key, the ConfigMaps and Secrets whose content
	// this reconcile read for their checksum, so that a promotion in the same
	// reconcile (the first one) copies them without reading them again.
	// It lives as long as the reconcile.
	read map[string]client.Object
	// copies maps the keys of configs that have content to the name of the
	// primary's copy of each (chooseCopyNames).
	copies   map[string]string
	revision string
	// callRevision is the revision the calls of this reconcile tell of
	// (see callRevision); the target's unless they tell of an ended release.
	callRevision string
	// autoscaler is what status.autoscaler becomes, when autoscalerSet.
	autoscaler    *sluicev1.AutoscalerRef
	autoscalerSet bool
	route         traffic.Target
	router        traffic.Router // nil when unavailable
	routed        *traffic.Route // what the router holds; nil when unknown
	// ensured is set once the Services and routes were ensured in this
	// reconcile (ensureRoutes).
	ensured bool
	// scaler and scaled are the target's autoscaler and what was read of
	// it; nil without autoscalerRef or while blocked.
	scaler *autoscaling.Autoscaler
	scaled *autoscaling.State
	// actionTaken is set once the action annotation was acted on.
	actionTaken bool
	// fresh is set once the cached Rollout was found current in this reconcile.
	fresh bool
	// acted is set once act has carried out a decision without error.
	acted bool
	// recorded is the status the API server holds: the one read, until
	// recordFirst records another.
	recorded *sluicev1.RolloutStatus
	// origin is the recorded state the reconcile started from, once
	// recordFirst has recorded over it (emit's keys derive from it).
	origin *webhooks.CallState
	// emitted counts the events emitted in this reconcile by reason.
	emitted map[string]int
	// done holds the events of what act did (a primary set to a revision,
	// a route restored) until the decision's own are told (tellDone).
	done []doneEvent
	// alerts is what this reconcile found of the Rollout's alerts (alerts.go).
	alerts alertsSeen
	obs    statemachine.Observation
}

// observe gathers what the state machine needs. It only reads (from the
// cache, and uncached where it must): every write is act's. It returns an
// error only for transient failures; what needs a user's fix is recorded as
// obs.Blocked.
func (r *Reconciler) observe(ctx context.Context, ro *sluicev1.Rollout) (*scope, error) {
	sc := &scope{ro: ro, kind: workloadKind(ro)}
	sc.obs.Action = sluicev1.Action(ro.Annotations[sluicev1.ActionAnnotation])
	sc.obs.ActionBy = ro.Annotations[sluicev1.ActionByAnnotation]
	sc.obs.ActionID = ro.Annotations[sluicev1.ActionIDAnnotation]
	name := ro.Spec.TargetRef.Name
	sc.route = routeTarget(ro)

	if err := r.observePrimary(ctx, sc); err != nil {
		return nil, err
	}
	obj, err := r.getWorkload(ctx, sc.kind, client.ObjectKey{Namespace: ro.Namespace, Name: name})
	switch {
	case apierrors.IsNotFound(err):
		// Route what can still be routed: all traffic to the primary.
		if sc.primary != nil {
			sc.route.PrimarySelector = sc.primary.MatchLabels()
			sc.route.CanarySelector = canarySelectorFromPrimary(sc.route.PrimarySelector)
			sc.route.CanaryPorts = sc.route.PrimaryPorts
			return sc, r.observeRoutes(ctx, sc)
		}
		return sc, nil
	case err != nil:
		return nil, fmt.Errorf("reading target %s %s: %w", sc.kind.Kind(), name, err)
	}
	target := sc.kind.Wrap(obj)
	if r.workloadWrites.IsBehind(workloadKey(sc.kind, target), obj.GetResourceVersion()) {
		return nil, errStale
	}
	sc.target = target
	sc.obs.TargetFound = true

	canarySel, primarySel, err := target.Selectors()
	if err != nil {
		sc.block("InvalidTarget", err.Error())
		return sc, nil
	}
	sc.route.CanarySelector, sc.route.PrimarySelector = canarySel, primarySel
	sc.route.CanaryPorts = traffic.ContainerPorts(target.Template())
	if sc.primary == nil {
		// The primary is about to be created from the target's template.
		sc.route.PrimaryPorts = sc.route.CanaryPorts
	}
	if sc.primary != nil && !maps.Equal(sc.primary.MatchLabels(), primarySel) {
		// A selector is immutable: the primary's pods keep their labels, and
		// re-pointing the Services at the new ones would select no pod.
		kind := sc.kind.Kind()
		sc.block("SelectorChanged", fmt.Sprintf("%s %s now selects %v but the running primary %s selects %v, and a %s's selector cannot change: "+
			"nothing is moved; restore the target's selector, or delete the Rollout (traffic is handed back to the target once it is ready) and create it again",
			kind, name, canarySel, sc.primary.Object().GetName(), sc.primary.MatchLabels(), kind))
	}

	if err := r.observeConfigs(ctx, sc); err != nil {
		return nil, err
	}
	if err := r.observeAutoscaler(ctx, sc); err != nil {
		return nil, err
	}
	if sc.revision, err = r.revisions.of(client.ObjectKeyFromObject(sc.ro), target, sc.configs); err != nil {
		return nil, err
	}
	sc.obs.Revision = sc.revision
	sc.callRevision = sc.revision
	sc.obs.CanaryReady, sc.obs.CanaryMessage = target.Ready(canaryThreshold(sc.ro))
	sc.obs.CanaryAvailable = target.Available()
	sc.obs.TargetReplicas = target.Replicas()
	if err := r.observeEndpoints(ctx, sc); err != nil {
		return nil, err
	}
	if sc.obs.Blocked != "" {
		// No router then: act writes nothing while blocked, Services and
		// routes included.
		return sc, nil
	}
	return sc, r.observeRoutes(ctx, sc)
}

// observeEndpoints holds the canary and the primary not ready until their
// Services' EndpointSlices list as many ready endpoints as their
// Deployments count available pods. The EndpointSlice controller lists a
// pod some time after the Deployment controller counts it (seconds on a
// loaded cluster), and a gateway or mesh routes by the EndpointSlices: a
// share moved to a Service before they list its pods goes to no pod, or
// to pods still draining (seen in e2e). The slices come from the cache,
// which holds those of Sluice's Services only. A Rollout whose Services
// have no EndpointSlice at all (a cluster without the controller, or
// Services just created) is not held.
func (r *Reconciler) observeEndpoints(ctx context.Context, sc *scope) error {
	var list discoveryv1.EndpointSliceList
	// The cache's own slices, not deep copies: they are only counted.
	if err := r.List(ctx, &list, client.InNamespace(sc.ro.Namespace), client.MatchingFields{endpointsIndex: sc.ro.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("reading the EndpointSlices of the Services of Rollout %s: %w", sc.ro.Name, err)
	}
	if len(list.Items) == 0 {
		return nil
	}
	ready := readyEndpoints(list.Items)
	if n := ready[sc.route.Canary]; sc.obs.CanaryReady && n < sc.obs.CanaryAvailable {
		sc.obs.CanaryReady = false
		sc.obs.CanaryMessage = endpointsMessage(sc.route.Canary, n, sc.obs.CanaryAvailable)
	}
	if n := ready[sc.route.Primary]; sc.obs.PrimaryReady && n < sc.obs.PrimaryAvailable {
		sc.obs.PrimaryReady = false
		sc.obs.PrimaryMessage = endpointsMessage(sc.route.Primary, n, sc.obs.PrimaryAvailable)
	}
	// A Service whose slices list no ready endpoint has no pod the data
	// plane can reach, whatever its Deployment still counts: evicted pods
	// leave the slices first, and the Deployment controller counts them
	// gone a few writes later (the ReplicaSet's status, then its own). The
	// share of a canary left with none moves to the primary from the
	// slices' word (shelter, rescueShare), not hundreds of milliseconds
	// later, each request of it failing meanwhile. Only none: a Service
	// listing fewer pods than are available is a Service catching up, which
	// holds readiness above. A Service with no slice yet is not judged.
	if n, listed := ready[sc.route.Canary]; listed && n == 0 {
		sc.obs.CanaryAvailable = 0
	}
	if n, listed := ready[sc.route.Primary]; listed && n == 0 {
		sc.obs.PrimaryAvailable = 0
	}
	return nil
}

// readyEndpoints counts the ready endpoints of each Service in slices: per
// address family (a dual-stack Service has slices of both), the larger.
// Each Service with a slice is in the map, with 0 when none is ready.
func readyEndpoints(slices []discoveryv1.EndpointSlice) map[string]int32 {
	type key struct {
		svc    string
		family discoveryv1.AddressType
	}
	counts := map[key]int32{}
	for _, sl := range slices {
		k := key{sl.Labels[discoveryv1.LabelServiceName], sl.AddressType}
		n := counts[k]
		for _, ep := range sl.Endpoints {
			// No condition means ready, as the API defines it.
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				n++
			}
		}
		// Stored even when 0: a slice listing no ready endpoint says the
		// Service has none, where no slice says nothing yet.
		counts[k] = n
	}
	out := map[string]int32{}
	for k, n := range counts {
		out[k.svc] = max(out[k.svc], n)
	}
	return out
}

func endpointsMessage(svc string, ready, available int32) string {
	return fmt.Sprintf("Service %s lists %d ready endpoints for %d available pods: waiting for the EndpointSlice controller, so that no share of traffic goes to pods the data plane cannot reach yet",
		svc, ready, available)
}

func (sc *scope) block(reason, msg string) {
	if sc.obs.Blocked == "" {
		sc.obs.Blocked, sc.obs.BlockedReason = msg, reason
	}
}

// observePrimary reads the primary, when there is one of this Rollout's.
func (r *Reconciler) observePrimary(ctx context.Context, sc *scope) error {
	obj, err := r.getWorkload(ctx, sc.kind, client.ObjectKey{Namespace: sc.ro.Namespace, Name: sc.route.Primary})
	if apierrors.IsNotFound(err) {
		// One this manager created that the cache has not shown yet:
		// created again, it would be refused as existing.
		if r.workloadWrites.IsMissing(workloadKeyOf(sc.kind, sc.ro.Namespace, sc.route.Primary)) {
			return errStale
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading primary %s %s: %w", sc.kind.Kind(), sc.route.Primary, err)
	}
	if !metav1.IsControlledBy(obj, sc.ro) {
		sc.block("PrimaryConflict", fmt.Sprintf("%s %s exists and is not managed by this Rollout: remove or rename it", sc.kind.Kind(), obj.GetName()))
		return nil
	}
	primary := sc.kind.Wrap(obj)
	if r.workloadWrites.IsBehind(workloadKey(sc.kind, primary), obj.GetResourceVersion()) {
		return errStale
	}
	sc.primary = primary
	sc.obs.PrimaryRevision = workload.RevisionOf(primary)
	sc.obs.PrimaryReady, sc.obs.PrimaryMessage = primary.Ready(primaryThreshold(sc.ro))
	sc.obs.PrimaryAvailable = primary.Available()
	sc.obs.PrimaryReplicas = primary.Replicas()
	sc.obs.PrimaryRestorable = workload.Restorable(primary, sc.ro.Status.StableRevision)
	sc.route.PrimaryPorts = traffic.ContainerPorts(primary.Template())
	// Not all of its pods at its current template (or not all available):
	// some may still declare the ports of an earlier one.
	settled, _ := primary.Ready(100)
	sc.route.PrimaryRolling = !settled
	return nil
}

// observeConfigs finds the checksums of the ConfigMaps and Secrets the
// target uses: their metadata from the cache (which holds no data), their
// content read uncached only for a resourceVersion not seen yet.
func (r *Reconciler) observeConfigs(ctx context.Context, sc *scope) error {
	sc.configs = map[string]string{}
	for _, ref := range workload.ConfigRefs(&sc.target.Template().Spec) {
		meta := configMetadata(ref.Kind)
		err := r.Get(ctx, client.ObjectKey{Namespace: sc.ro.Namespace, Name: ref.Name}, meta)
		var sum string
		var obj client.Object
		if err == nil {
			sum, obj, err = r.configChecksum(ctx, ref.Kind, meta)
		}
		if obj != nil {
			if sc.read == nil {
				sc.read = map[string]client.Object{}
			}
			sc.read[ref.Key()] = obj
		}
		switch {
		case apierrors.IsNotFound(err):
			if !ref.Optional {
				sc.configs[ref.Key()] = missingChecksum
			}
		case err != nil:
			return fmt.Errorf("reading %s: %w", ref.Key(), err)
		default:
			sc.configs[ref.Key()] = sum
		}
	}
	return r.chooseCopyNames(ctx, sc)
}

// chooseCopyNames names the primary's copy of each ConfigMap and Secret the
// target reads: the first of workload.CopyNames that is free or already
// this Rollout's copy, with its alternate's name (workload.AltCopyName)
// too. A name that is someone else's is never written: a team's own object
// of that name, or another Rollout's copy of a source both targets read
// (their releases, rollbacks and deletions must not change what this
// primary reads). When no name is left, the Rollout stalls (ConfigConflict)
// before anything is written. Read from the cache: a copy created a moment ago that it does
// not hold yet is created again, refused as existing (writeConfig), and
// named again once the cache has it.
func (r *Reconciler) chooseCopyNames(ctx context.Context, sc *scope) error {
	sc.copies = map[string]string{}
	chosen := map[string]bool{}
	for _, ref := range workload.ConfigRefs(&sc.target.Template().Spec) {
		if sum, ok := sc.configs[ref.Key()]; !ok || sum == missingChecksum || sum == inPlaceChecksum {
			continue
		}
		names := workload.CopyNames(ref.Name, sc.ro.Name)
		for _, name := range names {
			if chosen[name] {
				continue
			}
			free, err := r.copyNameFree(ctx, sc, ref.Kind, name)
			if err != nil {
				return err
			}
			if free {
				sc.copies[ref.Key()], chosen[name] = name, true
				break
			}
		}
		if _, ok := sc.copies[ref.Key()]; !ok {
			kind := configKindName(ref.Kind)
			sc.block("ConfigConflict", fmt.Sprintf("%s %s and %s (or their -alt copies) exist and are not this Rollout's copies: the primary's copy of %s %s takes one of these names, and Sluice never writes what is not its own; rename or remove one",
				kind, names[0], names[1], kind, ref.Name))
			return nil
		}
	}
	return nil
}

// copyNameFree reports whether the primary's copy may be named name: that
// and its alternate's name are each absent or a copy of this Rollout's.
func (r *Reconciler) copyNameFree(ctx context.Context, sc *scope, kind workload.ConfigKind, name string) (bool, error) {
	for _, n := range []string{name, workload.AltCopyName(name)} {
		meta := configMetadata(kind)
		err := r.Get(ctx, client.ObjectKey{Namespace: sc.ro.Namespace, Name: n}, meta)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("reading %s/%s: %w", kind, n, err)
		}
		if !metav1.IsControlledBy(meta, sc.ro) {
			return false, nil
		}
	}
	return true, nil
}

func configKindName(kind workload.ConfigKind) string {
	if kind == workload.KindSecret {
		return "Secret"
	}
	return "ConfigMap"
}

// newConfigObject is a full ConfigMap or Secret, for the API reader only.
func newConfigObject(kind workload.ConfigKind) client.Object {
	if kind == workload.KindSecret {
		return &corev1.Secret{}
	}
	return &corev1.ConfigMap{}
}

// observeRoutes resolves the Rollout's router and reads back the route it
// holds. It only reads: the Services and routes are created, updated or
// found taken by someone else when acting (ensureRoutes); until they exist
// the routed weight is unknown.
func (r *Reconciler) observeRoutes(ctx context.Context, sc *scope) error {
	router, err := r.Routers(sc.ro)
	if err != nil {
		sc.block("RouterUnavailable", err.Error())
		return nil
	}
	// A watch registered with the manager's cache, not a write.
	if err := r.ensureRouteWatch(router.Name()); err != nil {
		return err
	}
	route, ok, err := router.Observe(ctx, sc.route)
	if err != nil {
		return fmt.Errorf("reading the route with the %s router: %w", router.Name(), err)
	}
	if ok {
		sc.routed = &route
		sc.obs.RoutedWeight = &route.Weights.Canary
	}
	sc.router = router
	return nil
}

// canarySelectorFromPrimary undoes the -primary suffix of selector values,
// for a target that was deleted.
func canarySelectorFromPrimary(primary map[string]string) map[string]string {
	out := make(map[string]string, len(primary))
	for k, v := range primary {
		out[k] = strings.TrimSuffix(v, workload.PrimarySuffix)
	}
	return out
}

// StripEndpointSlice is the cache transform for EndpointSlices (the cache
// holds only those of Sluice's Services). Sluice counts the ready endpoints
// of each Service's slices, per address family, and finds a slice's
// Rollout and Service by two labels: that is what it keeps. Addresses,
// target references, node names, zones, hints, ports, the other labels and
// the owner (the Service, which Sluice never reaches through its slices)
// go: with many replicas they are most of a slice, and the primary's
// slices of an idle fleet sit in the cache for good. Each endpoint's
// readiness points at one of two shared values instead of a copy of its
// own; the cache's objects are read-only, and readers get deep copies.
func StripEndpointSlice(obj any) (any, error) {
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	sl.ManagedFields, sl.Annotations, sl.Ports = nil, nil, nil
	sl.OwnerReferences, sl.GenerateName = nil, ""
	kept := map[string]string{}
	for _, k := range []string{discoveryv1.LabelServiceName, RolloutLabel} {
		if v, ok := sl.Labels[k]; ok {
			kept[k] = v
		}
	}
	sl.Labels = kept
	for i, ep := range sl.Endpoints {
		sl.Endpoints[i] = discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: sharedBool(ep.Conditions.Ready)}}
	}
	return sl, nil
}

var sharedTrue, sharedFalse = true, false

// sharedBool points at a shared true or false with b's value (nil stays
// nil: no condition means ready).
func sharedBool(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &sharedTrue
	default:
		return &sharedFalse
	}
}
