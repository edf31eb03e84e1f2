package rollout

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// promotePrimary gives the primary the target's template and configuration
// at revision rev: config copies first, so new primary pods find them.
func (r *Reconciler) promotePrimary(ctx context.Context, sc *scope, rev string) error {
	if sc.primary != nil && rev == sc.ro.Status.StableRevision && rev != sc.revision {
		return r.restorePrimary(ctx, sc, rev)
	}
	if rev != sc.revision {
		// The target moved on; the state machine restarts the run.
		return nil
	}
	copied, err := r.copyConfigs(ctx, sc)
	if err != nil {
		return err
	}
	// Never fewer replicas than serve now, on either side.
	replicas := replicasOf(sc.target)
	if sc.primary != nil {
		replicas = max(replicas, replicasOf(sc.primary))
	}
	replicas = max(replicas, 1)
	want := buildPrimary(sc.target, sc.route.PrimarySelector, copied, rev, replicas)
	if err := controllerutil.SetControllerReference(sc.ro, want, r.Scheme()); err != nil {
		return err
	}
	if sc.primary == nil {
		if err := r.Create(ctx, want); err != nil {
			return fmt.Errorf("creating primary Deployment %s: %w", want.Name, err)
		}
	} else {
		p := sc.primary.DeepCopy()
		if err := keepStableTemplate(p, sc.ro.Status.StableRevision); err != nil {
			return err
		}
		p.Spec = want.Spec
		p.Labels = want.Labels
		p.Annotations[RevisionAnnotation] = rev
		if err := r.Update(ctx, p); err != nil {
			return fmt.Errorf("updating primary Deployment %s: %w", p.Name, err)
		}
		want = p
	}
	// The target's PodDisruptionBudgets guard the primary's pods too (pdb.go).
	if err := r.syncPrimaryPDBs(ctx, sc); err != nil {
		return err
	}
	sc.primary = want
	sc.obs.PrimaryRevision = rev
	sc.obs.PrimaryReady, _ = deploymentReady(want)
	r.Recorder.Eventf(sc.ro, nil, corev1.EventTypeNormal, "PrimaryUpdated", "Promote",
		"primary Deployment %s set to revision %s", want.Name, rev)
	// A change of the user's autoscaler is released with the revision.
	return r.syncAutoscaler(ctx, sc, autoscaling.Release{Revision: rev, Stable: sc.ro.Status.StableRevision})
}

// restorePrimary puts the stable revision's template, kept on the primary
// when its promotion started, back on the primary (an abort during a
// promotion). The replicas stay as they are.
func (r *Reconciler) restorePrimary(ctx context.Context, sc *scope, rev string) error {
	p := sc.primary.DeepCopy()
	tmpl, err := stableTemplate(p, rev)
	if err != nil || tmpl == nil {
		// Observe reported it as not restorable; the state machine stalls.
		return err
	}
	p.Spec.Template = *tmpl
	p.Annotations[RevisionAnnotation] = rev
	if err := r.Update(ctx, p); err != nil {
		return fmt.Errorf("restoring primary Deployment %s to revision %s: %w", p.Name, rev, err)
	}
	sc.primary = p
	sc.obs.PrimaryRevision = rev
	sc.obs.PrimaryReady, sc.obs.PrimaryMessage = deploymentReady(p)
	r.Recorder.Eventf(sc.ro, nil, corev1.EventTypeNormal, "PrimaryRestoring", "Rollback",
		"primary Deployment %s given back the template of revision %s", p.Name, rev)
	return r.restoreAutoscaler(ctx, sc, rev)
}

// copyConfigs writes a -primary copy of every ConfigMap and Secret the target
// uses and returns the keys it copied. A copy that already holds the content
// of the revision's checksum is left alone, without reading its source; the
// others are written from what this reconcile read of them, else read
// uncached.
func (r *Reconciler) copyConfigs(ctx context.Context, sc *scope) (map[string]bool, error) {
	copied := map[string]bool{}
	for _, ref := range configRefs(&sc.target.Spec.Template.Spec) {
		sum, ok := sc.configs[ref.key()]
		if !ok || sum == missingChecksum {
			continue
		}
		existing, current, err := r.copyHolds(ctx, ref.Kind, client.ObjectKey{Namespace: sc.ro.Namespace, Name: primaryName(ref.Name)}, sum)
		if err != nil {
			return nil, err
		}
		if !current {
			src := sc.read[ref.key()]
			if src == nil {
				src = newConfigObject(ref.Kind)
				if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: sc.ro.Namespace, Name: ref.Name}, src); err != nil {
					return nil, fmt.Errorf("reading %s: %w", ref.key(), err)
				}
			}
			if err := r.writeCopy(ctx, sc, src, existing); err != nil {
				return nil, err
			}
		}
		copied[ref.key()] = true
	}
	return copied, nil
}

// copyHolds reports whether the copy named key holds content of checksum sum,
// and returns its cached metadata (nil when there is no copy yet). The
// checksum is known from our last write of the copy, else read once: a copy
// changed by someone else has another resourceVersion and is read again.
func (r *Reconciler) copyHolds(ctx context.Context, kind configKind, key client.ObjectKey, sum string) (*metav1.PartialObjectMetadata, bool, error) {
	existing := configMetadata(kind)
	err := r.Get(ctx, key, existing)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", key.Name, err)
	}
	have, _, err := r.configChecksum(ctx, kind, existing)
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", key.Name, err)
	}
	return existing, have == sum, nil
}

// writeCopy creates (existing is nil) or updates the -primary copy of a
// ConfigMap or Secret, and remembers the checksum of what it wrote.
func (r *Reconciler) writeCopy(ctx context.Context, sc *scope, src client.Object, existing *metav1.PartialObjectMetadata) error {
	name := primaryName(src.GetName())
	meta := metav1.ObjectMeta{
		Name: name, Namespace: src.GetNamespace(),
		Labels: map[string]string{RolloutLabel: sc.ro.Name, traffic.ManagedByLabel: traffic.ManagedByValue},
	}
	var dst client.Object
	switch s := src.(type) {
	case *corev1.ConfigMap:
		dst = &corev1.ConfigMap{ObjectMeta: meta, Data: s.Data, BinaryData: s.BinaryData}
	case *corev1.Secret:
		dst = &corev1.Secret{ObjectMeta: meta, Data: s.Data, Type: s.Type}
	}
	if err := controllerutil.SetControllerReference(sc.ro, dst, r.Scheme()); err != nil {
		return err
	}
	if existing == nil {
		if err := r.Create(ctx, dst); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
	} else {
		dst.SetResourceVersion(existing.GetResourceVersion())
		if err := r.Update(ctx, dst); err != nil {
			return fmt.Errorf("updating %s: %w", name, err)
		}
	}
	r.sums.put(checksumKey(kindOf(src), client.ObjectKeyFromObject(dst)), dst.GetResourceVersion(), dataChecksum(src))
	return nil
}

func kindOf(o client.Object) configKind {
	if _, ok := o.(*corev1.Secret); ok {
		return kindSecret
	}
	return kindConfigMap
}

// scaleTarget runs the target (the canary) or scales it to zero.
//
// Up, it runs at least the primary's size (so it can carry any weight it
// will get) and at least want.CanaryMinReplicas, never fewer than it has (an
// autoscaler may have grown it). Its pods carry the checksum of the
// configuration they read, so a ConfigMap or Secret change restarts them.
//
// Down, the primary first takes the target's count when its owner set it on
// the parked target (PassOwnerReplicas); a count left over from a run only
// ever raises the primary, never lowers it. A primary with its own
// autoscaler (autoscalerRef) is left to it.
func (r *Reconciler) scaleTarget(ctx context.Context, sc *scope, want statemachine.Desired) error {
	cur := replicasOf(sc.target)
	if !want.CanaryUp {
		if cur == 0 {
			return nil
		}
		if sc.primary != nil && sc.ro.Spec.AutoscalerRef == nil {
			n := max(replicasOf(sc.primary), cur)
			if want.PassOwnerReplicas {
				n = cur
			}
			if n != replicasOf(sc.primary) {
				if err := r.setReplicas(ctx, sc.primary, n); err != nil {
					return err
				}
			}
		}
		return r.setReplicas(ctx, sc.target, 0)
	}
	n := max(cur, want.CanaryMinReplicas)
	if cur == 0 {
		n = max(n, 1)
		if sc.primary != nil {
			n = max(n, replicasOf(sc.primary))
		}
	}
	restart := needsConfigRestart(sc.target, sc.configs)
	if n == cur && !restart {
		return nil
	}
	patch := client.MergeFrom(sc.target.DeepCopy())
	sc.target.Spec.Replicas = &n
	if stamp := configStamp(sc.configs); restart || cur == 0 {
		if sc.target.Spec.Template.Annotations == nil {
			sc.target.Spec.Template.Annotations = map[string]string{}
		}
		sc.target.Spec.Template.Annotations[ConfigStampAnnotation] = stamp
	}
	if err := r.Patch(ctx, sc.target, patch); err != nil {
		return fmt.Errorf("scaling Deployment %s to %d: %w", sc.target.Name, n, err)
	}
	// New pods must be ready before any check counts.
	sc.obs.CanaryReady, sc.obs.CanaryMessage = deploymentReady(sc.target)
	return nil
}

func (r *Reconciler) setReplicas(ctx context.Context, d *appsv1.Deployment, n int32) error {
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = &n
	if err := r.Patch(ctx, d, patch); err != nil {
		return fmt.Errorf("scaling Deployment %s to %d: %w", d.Name, n, err)
	}
	return nil
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}
