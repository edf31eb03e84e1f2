package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// The primary's copies of the ConfigMaps and Secrets its target uses
// (<name>-primary), written at a promotion before the primary's pods that
// read them, and the -stable snapshots of their content kept for an abort
// during a promotion (promotePrimary, restorePrimary). Their content is read
// uncached: the cache holds their metadata only (configsum.go).

// pendingCopy is a -primary copy that does not hold its source's content.
type pendingCopy struct {
	ref      workload.ConfigRef
	key      client.ObjectKey
	existing *metav1.PartialObjectMetadata // nil when there is no copy yet
}

// copyConfigs writes the primary's copy of every ConfigMap and Secret the
// target uses, named as observe chose (chooseCopyNames), and returns the
// copies' names by the keys of their sources. A copy that already holds the
// content of the revision's checksum is left alone, without reading its
// source; the others are written from what this reconcile read of them,
// else read uncached, after beforeWrites (when set) was given the list of
// them.
func (r *Reconciler) copyConfigs(ctx context.Context, sc *scope, beforeWrites func([]pendingCopy) error) (map[string]string, error) {
	copied := map[string]string{}
	var pending []pendingCopy
	for _, ref := range workload.ConfigRefs(&sc.target.Template().Spec) {
		sum, ok := sc.configs[ref.Key()]
		if !ok || sum == missingChecksum {
			continue
		}
		name, ok := sc.copies[ref.Key()]
		if !ok {
			// observe blocks the Rollout when a copy has no name.
			return nil, fmt.Errorf("no name for the primary's copy of %s", ref.Key())
		}
		key := client.ObjectKey{Namespace: sc.ro.Namespace, Name: name}
		existing, current, err := r.copyHolds(ctx, ref.Kind, key, sum)
		if err != nil {
			return nil, err
		}
		if !current {
			pending = append(pending, pendingCopy{ref: ref, key: key, existing: existing})
		}
		copied[ref.Key()] = name
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
	if sc.primary.Object().GetAnnotations()[StableRevisionAnnotation] == stable {
		// Listed by an earlier try of this promotion.
		for _, ref := range workload.StableConfigs(sc.primary.Object()) {
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
	if err := workload.KeepStableTemplate(p, stable); err != nil {
		return nil, err
	}
	workload.SetStableConfigs(p.Object(), list)
	if err := r.Update(ctx, p.Object()); err != nil {
		return nil, fmt.Errorf("recording the stable configuration on primary %s %s: %w", sc.kind.Kind(), p.Object().GetName(), err)
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
func (r *Reconciler) restoreConfigs(ctx context.Context, sc *scope, p workload.Workload) error {
	ns := p.Object().GetNamespace()
	for _, ref := range workload.StableConfigs(p.Object()) {
		snap := newConfigObject(ref.Kind)
		snapKey := client.ObjectKey{Namespace: ns, Name: workload.StableCopyName(ref.Name)}
		if err := r.APIReader.Get(ctx, snapKey, snap); err != nil {
			return fmt.Errorf("reading %s to restore %s: %w", snapKey.Name, ref.Name, err)
		}
		copyKey := client.ObjectKey{Namespace: ns, Name: ref.Name}
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
	switch {
	case existing == nil:
		err := r.Create(ctx, dst)
		if apierrors.IsAlreadyExists(err) {
			// Created a moment ago, by this manager or someone else, and
			// not in the cache yet: look again once it is (observe then
			// names the copy anew if it is not this Rollout's).
			return errors.Join(fmt.Errorf("creating %s: %w", name, err), errStale)
		}
		if err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
	case !metav1.IsControlledBy(existing, sc.ro):
		// observe names no copy after someone else's object; one that
		// changed hands since it looked is left as it is, and the next
		// reconcile names the copy anew (or stalls) before it writes.
		return errors.Join(fmt.Errorf("%s %s is not this Rollout's copy", configKindName(kindOf(src)), name), errStale)
	default:
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
