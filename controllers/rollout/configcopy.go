package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/traffic"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// The primary's copies of the ConfigMaps and Secrets its target uses, two
// per source (the name observe chose, and its workload.AltCopyName): a
// promotion that changes a source's content writes the copy the primary's
// running pods do not read, then gives the primary its new template, which
// reads it. So no running pod's configuration is ever rewritten under it,
// and an abort needs only the stable template back. Their content is read
// uncached: the cache holds their metadata only (configsum.go).

// copyConfigs gives the primary a copy of every ConfigMap and Secret the
// target uses that holds the content of the revision's checksum, and
// returns the copies' names by the keys of their sources. Of a source's two
// copies (chooseCopyNames, workload.AltCopyName), the one the primary reads
// is kept when it holds that content; else the other is, written with it
// when it does not hold it yet. A copy the primary's pods read is never
// written: the kubelet refreshes a mounted ConfigMap or Secret in running
// pods, and the old version's pods, which serve until the rolling update
// replaces them, would read a configuration they were not released with.
// A copy is written from what this reconcile read of its source, else read
// uncached.
func (r *Reconciler) copyConfigs(ctx context.Context, sc *scope) (map[string]string, error) {
	reads := map[string]bool{}
	if sc.primary != nil {
		for _, ref := range workload.ConfigRefs(&sc.primary.Template().Spec) {
			reads[ref.Key()] = true
		}
	}
	copied := map[string]string{}
	for _, ref := range workload.ConfigRefs(&sc.target.Template().Spec) {
		sum, ok := sc.configs[ref.Key()]
		if !ok || sum == missingChecksum || sum == inPlaceChecksum {
			continue
		}
		name, ok := sc.copies[ref.Key()]
		if !ok {
			// observe blocks the Rollout when a copy has no name.
			return nil, fmt.Errorf("no name for the primary's copy of %s", ref.Key())
		}
		// first is the copy the primary reads, or, when it reads neither,
		// the name observe chose.
		first, second := name, workload.AltCopyName(name)
		if reads[workload.ConfigRef{Kind: ref.Kind, Name: second}.Key()] {
			first, second = second, first
		}
		into, err := r.copyInto(ctx, sc, ref, sum, first, second, reads[workload.ConfigRef{Kind: ref.Kind, Name: first}.Key()])
		if err != nil {
			return nil, err
		}
		copied[ref.Key()] = into
	}
	return copied, nil
}

// copyInto returns which of the copies first and second of the source ref
// holds content of checksum sum, writing it into one when neither does:
// into second when the primary reads first (inUse), else into first.
func (r *Reconciler) copyInto(ctx context.Context, sc *scope, ref workload.ConfigRef, sum, first, second string, inUse bool) (string, error) {
	ns := sc.ro.Namespace
	firstMeta, current, err := r.copyHolds(ctx, ref.Kind, client.ObjectKey{Namespace: ns, Name: first}, sum)
	if err != nil || current {
		return first, err
	}
	secondMeta, current, err := r.copyHolds(ctx, ref.Kind, client.ObjectKey{Namespace: ns, Name: second}, sum)
	if err != nil || current {
		return second, err
	}
	into, existing := first, firstMeta
	if inUse {
		into, existing = second, secondMeta
	}
	if existing != nil {
		// A primary an older Sluice left reading this Rollout's copy
		// (handOverCopies) gets it, and observe names this one anew.
		other, err := r.otherPrimaryReading(ctx, sc.ro, workload.ConfigRef{Kind: ref.Kind, Name: into})
		if err != nil {
			return "", err
		}
		if other != nil {
			if err := r.handOverCopy(ctx, sc.ro, other, workload.ConfigRef{Kind: ref.Kind, Name: into}); err != nil {
				return "", err
			}
			return "", errors.Join(fmt.Errorf("%s %s is read by the primary of Rollout %s", configKindName(ref.Kind), into, other.Name), errStale)
		}
	}
	src := sc.read[ref.Key()]
	if src == nil {
		src = newConfigObject(ref.Kind)
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, src); err != nil {
			return "", fmt.Errorf("reading %s: %w", ref.Key(), err)
		}
	}
	return into, r.writeConfig(ctx, sc, src, into, existing)
}

// restoreConfigs writes the -stable snapshots that the primary p lists back
// into their copies: an abort of a promotion that a Sluice from before the
// alternate copies started, which wrote the copies the stable pods read
// (workload.StableConfigsAnnotation). The primary lists none otherwise.
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
// name, owned by the Rollout, with the content of src (a source, or a
// -stable snapshot an older Sluice kept), and remembers the checksum of
// what it wrote.
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

// handOverCopies makes another Rollout of the namespace the controller of
// each config copy this one controls and that other's primary reads, before
// the finalizer goes and the copy would be garbage-collected with this
// Rollout. Sluice names a copy per Rollout (chooseCopyNames), but an older
// Sluice named every copy <name>-primary, and so left the primaries of two
// Rollouts sharing a ConfigMap both reading the first one's copy until each
// is promoted again: deleted with it, the other primary's pods that start
// later (an eviction, an autoscaler's scale-up) could not start. Cached
// reads only, once per deletion; a write only for a copy handed over.
func (r *Reconciler) handOverCopies(ctx context.Context, ro *sluicev1.Rollout) error {
	return r.forOtherPrimaries(ctx, ro, func(other *sluicev1.Rollout, reads []workload.ConfigRef) (bool, error) {
		for _, ref := range reads {
			if err := r.handOverCopy(ctx, ro, other, ref); err != nil {
				return false, err
			}
		}
		return false, nil
	})
}

// otherPrimaryReading returns the Rollout of ro's namespace, other than ro,
// whose primary reads the copy ref, or nil. Asked before a copy is
// written: the same older Sluice's leftover, written by this Rollout's
// promotion, would change what the other's running pods read.
func (r *Reconciler) otherPrimaryReading(ctx context.Context, ro *sluicev1.Rollout, ref workload.ConfigRef) (*sluicev1.Rollout, error) {
	var found *sluicev1.Rollout
	err := r.forOtherPrimaries(ctx, ro, func(other *sluicev1.Rollout, reads []workload.ConfigRef) (bool, error) {
		if slices.ContainsFunc(reads, func(r workload.ConfigRef) bool { return r.Key() == ref.Key() }) {
			found = other
			return true, nil
		}
		return false, nil
	})
	return found, err
}

// forOtherPrimaries calls f with each other Rollout of ro's namespace that
// is not being deleted and the ConfigMaps and Secrets its primary reads,
// until f says it is done. Cached reads, but for the Rollouts of a sharded
// manager: its cache holds its shard's only, and another shard's primary
// may read a copy of this Rollout's too (it runs when a copy is written,
// pruned or handed over, not at every reconcile). Primaries are cached
// whole whatever their shard (CachedWorkloads).
func (r *Reconciler) forOtherPrimaries(ctx context.Context, ro *sluicev1.Rollout, f func(*sluicev1.Rollout, []workload.ConfigRef) (bool, error)) error {
	var rollouts sluicev1.RolloutList
	var reader client.Reader = r.Client
	if r.Sharded {
		reader = r.APIReader
	}
	if err := reader.List(ctx, &rollouts, client.InNamespace(ro.Namespace)); err != nil {
		return fmt.Errorf("listing the Rollouts whose primaries may read this one's config copies: %w", err)
	}
	for i := range rollouts.Items {
		other := &rollouts.Items[i]
		if other.UID == ro.UID || !other.DeletionTimestamp.IsZero() {
			continue
		}
		kind := workloadKind(other)
		obj := kind.New()
		err := r.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: routeTarget(other).Primary}, obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the primary of Rollout %s: %w", other.Name, err)
		}
		primary := kind.Wrap(obj)
		if !metav1.IsControlledBy(primary.Object(), other) {
			continue
		}
		done, err := f(other, workload.ConfigRefs(&primary.Template().Spec))
		if err != nil || done {
			return err
		}
	}
	return nil
}

// handOverCopy makes Rollout to the controller of the copy ref when Rollout
// from is, and says so in an event on to.
func (r *Reconciler) handOverCopy(ctx context.Context, from, to *sluicev1.Rollout, ref workload.ConfigRef) error {
	m := configMetadata(ref.Kind)
	err := r.Get(ctx, client.ObjectKey{Namespace: from.Namespace, Name: ref.Name}, m)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", configKindName(ref.Kind), ref.Name, err)
	}
	if !metav1.IsControlledBy(m, from) {
		return nil
	}
	before := m.DeepCopy()
	var owners []metav1.OwnerReference
	for _, o := range m.GetOwnerReferences() {
		if o.UID != from.UID {
			owners = append(owners, o)
		}
	}
	m.SetOwnerReferences(owners)
	if err := controllerutil.SetControllerReference(to, m, r.Scheme()); err != nil {
		return err
	}
	labels := m.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[RolloutLabel] = to.Name
	m.SetLabels(labels)
	// Optimistic lock: a copy changed meanwhile is looked at again.
	if err := r.Patch(ctx, m, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("handing %s %s over to Rollout %s: %w", configKindName(ref.Kind), ref.Name, to.Name, err)
	}
	log.FromContext(ctx).Info("config copy handed over", "copy", ref.Name, "from", from.Name, "to", to.Name)
	r.Recorder.Eventf(to, nil, corev1.EventTypeNormal, "ConfigCopyHandedOver", "Copy",
		"%s %s, which this Rollout's primary reads, was the copy of Rollout %s: it is this Rollout's now, so that %s neither writes it nor takes it away when deleted",
		configKindName(ref.Kind), ref.Name, from.Name, from.Name)
	return nil
}
