package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/deployment"
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
	// A promotion from the stable revision keeps the stable content of the
	// copies it overwrites, for an abort (restorePrimary).
	var beforeWrites func([]pendingCopy) error
	var kept []string
	fromStable := sc.primary != nil && sc.primary.Annotations[RevisionAnnotation] == sc.ro.Status.StableRevision
	if fromStable {
		beforeWrites = func(pending []pendingCopy) (err error) {
			kept, err = r.keepStableConfigs(ctx, sc, pending)
			return err
		}
	}
	copied, err := r.copyConfigs(ctx, sc, beforeWrites)
	if err != nil {
		return err
	}
	// Never fewer replicas than serve now, on either side.
	replicas := deployment.Replicas(sc.target)
	if sc.primary != nil {
		replicas = max(replicas, deployment.Replicas(sc.primary))
	}
	replicas = max(replicas, 1)
	want := deployment.BuildPrimary(sc.target, workload.Primary{Selector: sc.route.PrimarySelector, Copied: copied, Revision: rev, Replicas: replicas})
	if err := controllerutil.SetControllerReference(sc.ro, want, r.Scheme()); err != nil {
		return err
	}
	if sc.primary == nil {
		if err := r.Create(ctx, want); err != nil {
			return fmt.Errorf("creating primary Deployment %s: %w", want.Name, err)
		}
	} else {
		p := sc.primary.DeepCopy()
		if err := workload.KeepStableTemplate(deployment.Of(p), sc.ro.Status.StableRevision); err != nil {
			return err
		}
		if fromStable {
			workload.SetStableConfigs(p.Annotations, kept)
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
	sc.obs.PrimaryReady, _ = deployment.Ready(want)
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
	tmpl, err := workload.StableTemplate(deployment.Of(p), rev)
	if err != nil || tmpl == nil {
		// Observe reported it as not restorable; the state machine stalls.
		return err
	}
	// The stable pods read the stable configuration again: the copies
	// first, so that pods the template change starts find it.
	if err := r.restoreConfigs(ctx, sc, p); err != nil {
		return err
	}
	p.Spec.Template = *tmpl
	p.Annotations[RevisionAnnotation] = rev
	if err := r.Update(ctx, p); err != nil {
		return fmt.Errorf("restoring primary Deployment %s to revision %s: %w", p.Name, rev, err)
	}
	sc.primary = p
	sc.obs.PrimaryRevision = rev
	sc.obs.PrimaryReady, sc.obs.PrimaryMessage = deployment.Ready(p)
	r.Recorder.Eventf(sc.ro, nil, corev1.EventTypeNormal, "PrimaryRestoring", "Rollback",
		"primary Deployment %s given back the template of revision %s", p.Name, rev)
	return r.restoreAutoscaler(ctx, sc, rev)
}

// pendingCopy is a -primary copy that does not hold its source's content.
type pendingCopy struct {
	ref      workload.ConfigRef
	key      client.ObjectKey
	existing *metav1.PartialObjectMetadata // nil when there is no copy yet
}

// copyConfigs writes a -primary copy of every ConfigMap and Secret the target
// uses and returns the keys it copied. A copy that already holds the content
// of the revision's checksum is left alone, without reading its source; the
// others are written from what this reconcile read of them, else read
// uncached, after beforeWrites (when set) was given the list of them.
func (r *Reconciler) copyConfigs(ctx context.Context, sc *scope, beforeWrites func([]pendingCopy) error) (map[string]bool, error) {
	copied := map[string]bool{}
	var pending []pendingCopy
	for _, ref := range workload.ConfigRefs(&sc.target.Spec.Template.Spec) {
		sum, ok := sc.configs[ref.Key()]
		if !ok || sum == missingChecksum {
			continue
		}
		key := client.ObjectKey{Namespace: sc.ro.Namespace, Name: workload.PrimaryName(ref.Name)}
		existing, current, err := r.copyHolds(ctx, ref.Kind, key, sum)
		if err != nil {
			return nil, err
		}
		if !current {
			pending = append(pending, pendingCopy{ref: ref, key: key, existing: existing})
		}
		copied[ref.Key()] = true
	}
	if beforeWrites != nil {
		if err := beforeWrites(pending); err != nil {
			return nil, err
		}
	}
	for _, pc := range pending {
		src := sc.read[pc.ref.Key()]
		if src == nil {
			src = newConfigObject(pc.ref.Kind)
			if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: sc.ro.Namespace, Name: pc.ref.Name}, src); err != nil {
				return nil, fmt.Errorf("reading %s: %w", pc.ref.Key(), err)
			}
		}
		if err := r.writeConfig(ctx, sc, src, pc.key.Name, pc.existing); err != nil {
			return nil, err
		}
	}
	return copied, nil
}

// keepStableConfigs snapshots, before a promotion from the stable revision
// overwrites them, the copies of pending that hold the stable content, as
// <copy>-stable, and lists them on the primary with its stable template
// before any copy is overwritten: a promotion cut short and tried again
// finds its copies overwritten already, and the list still names their
// snapshots. It returns the list (workload.ConfigRef keys of the copies).
func (r *Reconciler) keepStableConfigs(ctx context.Context, sc *scope, pending []pendingCopy) ([]string, error) {
	stable := sc.ro.Status.StableRevision
	kept := map[string]bool{}
	if sc.primary.Annotations[StableRevisionAnnotation] == stable {
		// Listed by an earlier try of this promotion.
		for _, ref := range workload.StableConfigs(sc.primary.Annotations) {
			kept[ref.Key()] = true
		}
	}
	added := false
	for _, pc := range pending {
		k := workload.ConfigRef{Kind: pc.ref.Kind, Name: pc.key.Name}.Key()
		if pc.existing == nil || kept[k] {
			continue
		}
		if err := r.snapshotCopy(ctx, sc, pc.ref.Kind, pc.key); err != nil {
			return nil, err
		}
		kept[k], added = true, true
	}
	list := slices.Sorted(maps.Keys(kept))
	if !added {
		return list, nil
	}
	p := sc.primary.DeepCopy()
	if err := workload.KeepStableTemplate(deployment.Of(p), stable); err != nil {
		return nil, err
	}
	workload.SetStableConfigs(p.Annotations, list)
	if err := r.Update(ctx, p); err != nil {
		return nil, fmt.Errorf("recording the stable configuration on primary Deployment %s: %w", p.Name, err)
	}
	sc.primary = p
	return list, nil
}

// snapshotCopy keeps the content of the copy named key as its -stable
// snapshot, read uncached (the cache holds no data).
func (r *Reconciler) snapshotCopy(ctx context.Context, sc *scope, kind workload.ConfigKind, key client.ObjectKey) error {
	cur := newConfigObject(kind)
	if err := r.APIReader.Get(ctx, key, cur); err != nil {
		return fmt.Errorf("reading %s to keep it for an abort: %w", key.Name, err)
	}
	snapKey := client.ObjectKey{Namespace: key.Namespace, Name: workload.StableCopyName(key.Name)}
	existing, current, err := r.copyHolds(ctx, kind, snapKey, workload.DataChecksum(cur))
	if err != nil || current {
		return err
	}
	return r.writeConfig(ctx, sc, cur, snapKey.Name, existing)
}

// restoreConfigs writes the -stable snapshots that the primary p lists back
// into their copies.
func (r *Reconciler) restoreConfigs(ctx context.Context, sc *scope, p *appsv1.Deployment) error {
	for _, ref := range workload.StableConfigs(p.Annotations) {
		snap := newConfigObject(ref.Kind)
		snapKey := client.ObjectKey{Namespace: p.Namespace, Name: workload.StableCopyName(ref.Name)}
		if err := r.APIReader.Get(ctx, snapKey, snap); err != nil {
			return fmt.Errorf("reading %s to restore %s: %w", snapKey.Name, ref.Name, err)
		}
		copyKey := client.ObjectKey{Namespace: p.Namespace, Name: ref.Name}
		existing, current, err := r.copyHolds(ctx, ref.Kind, copyKey, workload.DataChecksum(snap))
		if err != nil {
			return err
		}
		if current {
			continue
		}
		if err := r.writeConfig(ctx, sc, snap, ref.Name, existing); err != nil {
			return err
		}
	}
	return nil
}

// copyHolds reports whether the copy named key holds content of checksum sum,
// and returns its cached metadata (nil when there is no copy yet). The
// checksum is known from our last write of the copy, else read once: a copy
// changed by someone else has another resourceVersion and is read again.
func (r *Reconciler) copyHolds(ctx context.Context, kind workload.ConfigKind, key client.ObjectKey, sum string) (*metav1.PartialObjectMetadata, bool, error) {
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

// writeConfig creates (existing is nil) or updates the ConfigMap or Secret
// name, owned by the Rollout, with the content of src (a -primary copy or a
// -stable snapshot), and remembers the checksum of what it wrote.
func (r *Reconciler) writeConfig(ctx context.Context, sc *scope, src client.Object, name string, existing *metav1.PartialObjectMetadata) error {
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
	r.sums.put(checksumKey(kindOf(src), client.ObjectKeyFromObject(dst)), dst.GetResourceVersion(), workload.DataChecksum(src))
	return nil
}

func kindOf(o client.Object) workload.ConfigKind {
	if _, ok := o.(*corev1.Secret); ok {
		return workload.KindSecret
	}
	return workload.KindConfigMap
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
	cur := deployment.Replicas(sc.target)
	if !want.CanaryUp {
		if cur == 0 {
			return nil
		}
		if sc.primary != nil && sc.ro.Spec.AutoscalerRef == nil {
			n := max(deployment.Replicas(sc.primary), cur)
			if want.PassOwnerReplicas {
				n = cur
			}
			if n != deployment.Replicas(sc.primary) {
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
			n = max(n, deployment.Replicas(sc.primary))
		}
	}
	restart := workload.NeedsConfigRestart(&sc.target.Spec.Template, sc.configs)
	if n == cur && !restart {
		return nil
	}
	patch := client.MergeFrom(sc.target.DeepCopy())
	sc.target.Spec.Replicas = &n
	if stamp := workload.ConfigStamp(sc.configs); restart || cur == 0 {
		if sc.target.Spec.Template.Annotations == nil {
			sc.target.Spec.Template.Annotations = map[string]string{}
		}
		sc.target.Spec.Template.Annotations[ConfigStampAnnotation] = stamp
	}
	if err := r.Patch(ctx, sc.target, patch); err != nil {
		return fmt.Errorf("scaling Deployment %s to %d: %w", sc.target.Name, n, err)
	}
	// New pods must be ready before any check counts.
	sc.obs.CanaryReady, sc.obs.CanaryMessage = deployment.Ready(sc.target)
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
