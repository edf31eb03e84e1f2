package istio

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/sluice-dev/sluice/pkg/traffic"
)

// Sluice routes to the -primary and -canary Services by host, never by
// subset: each version is a Service of its own, as in Flagger. So the
// DestinationRule of a version is the one whose host is that Service, and
// Sluice needs nothing in it. It generates one per host (named after the
// Service, carrying routing.istio.trafficPolicy), or adopts the user's
// (routing.istio.destinationRuleRefs): an adopted DestinationRule is read,
// to check that it is for the host, and never written.

// adoptedDR returns the name of the user's DestinationRule that the Rollout
// adopts for host, if it adopts one.
func adoptedDR(t traffic.Target, host string) (string, bool) {
	refs := config(t).DestinationRuleRefs
	switch {
	case refs == nil:
		return "", false
	case host == t.Primary:
		return refs.Primary.Name, true
	default:
		return refs.Canary.Name, true
	}
}

// other is the other version's host.
func other(t traffic.Target, host string) string {
	if host == t.Primary {
		return t.Canary
	}
	return t.Primary
}

// adoptDestinationRule checks the user's DestinationRule name, adopted for
// host: it must exist (its policy is what the user asked to keep in force)
// and be for host (Istio applies it only there). The DestinationRule Sluice
// generated for host before, if any, is deleted, so that one
// DestinationRule applies to the host; when it is the very one now named,
// it is released to the user instead (no owner, no managed-by label), as it
// stands.
func (r *Router) adoptDestinationRule(ctx context.Context, t traffic.Target, host, name string) error {
	dr := &istiov1.DestinationRule{}
	// The cache's own object (read on every reconcile): never changed here.
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: name}, dr, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) {
		return &traffic.StalledError{Reason: "DestinationRuleNotFound", Message: fmt.Sprintf(
			"routing.istio.destinationRuleRefs: DestinationRule %s (for host %s) not found", name, host)}
	}
	if err != nil {
		return fmt.Errorf("reading DestinationRule %s: %w", name, err)
	}
	if hostsOf(t).name(dr.Spec.Host) != host {
		return &traffic.StalledError{Reason: "DestinationRuleHostMismatch", Message: fmt.Sprintf(
			"routing.istio.destinationRuleRefs: DestinationRule %s is for host %q, not %s: Istio would not apply it to the traffic Sluice sends to %s; set its host to %s, or name the DestinationRule of that host",
			name, dr.Spec.Host, host, host, host)}
	}
	if metav1.IsControlledBy(dr, t.Rollout) {
		upd := dr.DeepCopy()
		release(upd, t)
		// Locked: the owner references are a list, which a merge patch
		// writes whole, and the DestinationRule is now the user's.
		if err := r.Client.Patch(ctx, upd, client.MergeFromWithOptions(dr, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("releasing DestinationRule %s: %w", name, err)
		}
	}
	if name == host {
		return nil
	}
	generated := &istiov1.DestinationRule{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: host}, generated)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading DestinationRule %s: %w", host, err)
	case !metav1.IsControlledBy(generated, t.Rollout):
		return nil
	}
	if err := r.Client.Delete(ctx, generated, client.Preconditions{UID: &generated.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting DestinationRule %s, replaced by the adopted %s: %w", host, name, err)
	}
	return nil
}

// release drops the Rollout's ownership of an object it generated.
func release(o client.Object, t traffic.Target) {
	var owners []metav1.OwnerReference
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID != t.Rollout.UID {
			owners = append(owners, ref)
		}
	}
	o.SetOwnerReferences(owners)
	labels := o.GetLabels()
	delete(labels, traffic.ManagedByLabel)
	o.SetLabels(labels)
}

// ensureDestinationRule creates the DestinationRule of host, or puts the
// one it created back to the spec: the host and routing.istio.trafficPolicy,
// nothing else. A change of the policy in the Rollout, or an edit of the
// DestinationRule by someone else, is undone here.
func (r *Router) ensureDestinationRule(ctx context.Context, t traffic.Target, host string, p policies) error {
	want := destinationRuleSpec(host, p)
	dr := &istiov1.DestinationRule{}
	// The cache's own object: nearly every reconcile finds it as it should
	// be and only reads it; a patch goes from a copy.
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: t.Rollout.Namespace, Name: host}, dr, client.UnsafeDisableDeepCopy)
	if err == nil {
		if !metav1.IsControlledBy(dr, t.Rollout) {
			return &traffic.StalledError{Reason: "RouteConflict", Message: fmt.Sprintf(
				"DestinationRule %s exists and is not managed by this Rollout: to keep it, adopt it (and the one of %s) with routing.istio.destinationRuleRefs, which Sluice then uses as they are and never writes; or remove it, and Sluice generates it",
				host, other(t, host))}
		}
		if proto.Equal(&dr.Spec, want) {
			return nil
		}
		upd := dr.DeepCopy()
		upd.Spec.Reset()
		proto.Merge(&upd.Spec, want)
		if err := r.Client.Patch(ctx, upd, client.MergeFrom(dr)); err != nil {
			return fmt.Errorf("updating DestinationRule %s: %w", host, err)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading DestinationRule %s: %w", host, err)
	}
	dr = &istiov1.DestinationRule{ObjectMeta: metav1.ObjectMeta{
		Name: host, Namespace: t.Rollout.Namespace,
		Labels: map[string]string{traffic.ManagedByLabel: traffic.ManagedByValue},
	}}
	proto.Merge(&dr.Spec, want)
	if err := controllerutil.SetControllerReference(t.Rollout, dr, r.Client.Scheme()); err != nil {
		return err
	}
	if err := r.Client.Create(ctx, dr); err != nil {
		return fmt.Errorf("creating DestinationRule %s: %w", host, traffic.CreateRefused(err, "DestinationRule"))
	}
	return nil
}
