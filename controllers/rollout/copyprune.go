package rollout

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// Config copies no pod reads any more are deleted once a release has ended.
// A target whose ConfigMaps are generated (kustomize's configMapGenerator
// names each content anew) would otherwise leave a copy behind at every
// release, for as long as the Rollout lives.
//
// A copy goes only when all of this holds, so that no pod that may start
// ever misses one:
//   - the Rollout is at rest: Initialized, Succeeded, or Failed with traffic
//     back on the primary, and not blocked;
//   - its primary runs the stable revision on all of its pods;
//   - the copy is this Rollout's (its controller), and neither it nor its
//     pair (workload.AltCopyName) is read by the primary's template as the
//     API server holds it (one uncached read: the cache may not have the
//     primary's latest template yet), nor by the template the primary keeps
//     of its previous stable revision (for an abort, and for a rolling
//     update undone by hand), nor listed as a snapshot an older Sluice
//     kept;
//   - no other Rollout's primary reads it (a copy an older Sluice shared):
//     that Rollout is given it instead (handOverCopy);
//   - it is still what was listed: the delete is conditional on its UID and
//     resourceVersion.
//
// One pass is made for each state at rest (Reconciler.pruned), and the API
// server is asked only when a copy looks unread in the cache: a Rollout at
// rest makes no request for it, and a fleet whose releases end together
// makes one small read each, never a list of the namespace's workloads.

// restState names the state at rest st is in, "" when it is not at rest.
func restState(st *sluicev1.RolloutStatus) string {
	switch st.Phase {
	case sluicev1.PhaseInitialized, sluicev1.PhaseSucceeded:
	case sluicev1.PhaseFailed:
		if st.CanaryWeight > 0 {
			// The primary is being given its stable template back.
			return ""
		}
	default:
		return ""
	}
	return string(st.Phase) + "/" + st.StableRevision + "/" + st.FailedRevision
}

// pruneCopies deletes the config copies of sc's Rollout that no workload
// reads any more, once for each state at rest st reaches.
func (r *Reconciler) pruneCopies(ctx context.Context, sc *scope, st *sluicev1.RolloutStatus) error {
	state := restState(st)
	key := client.ObjectKeyFromObject(sc.ro)
	if state == "" || sc.obs.Blocked != "" || sc.primary == nil || r.pruned.has(key, state) {
		return nil
	}
	if workload.RevisionOf(sc.primary) != st.StableRevision {
		return nil
	}
	if settled, _ := sc.primary.Ready(100); !settled {
		// Pods of an earlier template may still start or run: look again
		// once the primary has rolled out (its status wakes the Rollout).
		return nil
	}
	// One pass for this state whatever happens: a refusal (a chart without
	// the delete verb, say) is told once, not at every reconcile.
	r.pruned.mark(key, state)
	type candidate struct {
		kind workload.ConfigKind
		meta *metav1.PartialObjectMetadata
	}
	// What the cached primary reads is never a candidate: the API server
	// is asked only about copies that look unread.
	cached := map[string]bool{}
	if err := addReads(cached, sc.primary.Object(), sc.primary.Template()); err != nil {
		return err
	}
	var candidates []candidate
	for _, kind := range []workload.ConfigKind{workload.KindConfigMap, workload.KindSecret} {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(configKindName(kind) + "List"))
		if err := r.List(ctx, list, client.InNamespace(sc.ro.Namespace), client.MatchingFields{copiesIndex: sc.ro.Name}); err != nil {
			return fmt.Errorf("listing the config copies: %w", err)
		}
		for i := range list.Items {
			if metav1.IsControlledBy(&list.Items[i], sc.ro) && !pairRead(cached, kind, list.Items[i].Name) {
				candidates = append(candidates, candidate{kind, &list.Items[i]})
			}
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	read, err := r.primaryReadsLive(ctx, sc)
	if err != nil {
		return err
	}
	others := map[string]*sluicev1.Rollout{}
	err = r.forOtherPrimaries(ctx, sc.ro, func(other *sluicev1.Rollout, reads []workload.ConfigRef) (bool, error) {
		for _, ref := range reads {
			others[ref.Key()] = other
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	var deleted []string
	defer func() {
		// Told even when a later delete failed.
		if len(deleted) > 0 {
			r.Recorder.Eventf(sc.ro, nil, corev1.EventTypeNormal, "ConfigCopiesDeleted", "Prune",
				"deleted %s: no pod of the primary reads them any more, nor would an undo of its last release", strings.Join(deleted, ", "))
		}
	}()
	for _, cand := range candidates {
		kind, c := cand.kind, cand.meta
		if pairRead(read, kind, c.Name) {
			continue
		}
		if other := others[workload.ConfigRef{Kind: kind, Name: c.Name}.Key()]; other != nil {
			if err := r.handOverCopy(ctx, sc.ro, other, workload.ConfigRef{Kind: kind, Name: c.Name}); err != nil {
				return err
			}
			continue
		}
		obj := newConfigObject(kind)
		obj.SetNamespace(c.Namespace)
		obj.SetName(c.Name)
		err := r.Delete(ctx, obj, client.Preconditions{UID: &c.UID, ResourceVersion: &c.ResourceVersion})
		switch {
		case apierrors.IsNotFound(err):
		case apierrors.IsConflict(err):
			// Changed since it was listed (handed over, say): looked at
			// again at the next state at rest.
			log.FromContext(ctx).Info("config copy changed since it was listed; kept", "copy", c.Name)
		case err != nil:
			return fmt.Errorf("deleting %s %s, which no pod reads any more (kept; tried again when the next release ends): %w", configKindName(kind), c.Name, err)
		default:
			deleted = append(deleted, configKindName(kind)+" "+c.Name)
		}
	}
	return nil
}

// primaryReadsLive returns the keys (workload.ConfigRef.Key) of the
// ConfigMaps and Secrets that sc's primary reads, keeps for an abort, or
// lists as snapshots, as the API server holds it.
func (r *Reconciler) primaryReadsLive(ctx context.Context, sc *scope) (map[string]bool, error) {
	live := sc.kind.New()
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(sc.primary.Object()), live); err != nil {
		return nil, fmt.Errorf("reading the primary before deleting config copies: %w", err)
	}
	p := sc.kind.Wrap(live)
	read := map[string]bool{}
	if err := addReads(read, live, p.Template()); err != nil {
		return nil, err
	}
	return read, nil
}

// addReads adds to read the keys of the ConfigMaps and Secrets that the
// workload o, of pod template tmpl, reads, keeps for an abort, or lists as
// snapshots.
func addReads(read map[string]bool, o metav1.Object, tmpl *corev1.PodTemplateSpec) error {
	for _, ref := range workload.ConfigRefs(&tmpl.Spec) {
		read[ref.Key()] = true
	}
	kept, err := workload.KeptTemplate(o)
	if err != nil {
		return err
	}
	if kept != nil {
		for _, ref := range workload.ConfigRefs(&kept.Spec) {
			read[ref.Key()] = true
		}
	}
	for _, ref := range workload.StableConfigs(o) {
		read[ref.Key()] = true
		read[workload.ConfigRef{Kind: ref.Kind, Name: workload.StableCopyName(ref.Name)}.Key()] = true
	}
	return nil
}

// pairRead reports whether the copy name, or the other copy of its pair, is
// read: the two take turns, and the one not read now is written at the next
// change of its source's content.
func pairRead(read map[string]bool, kind workload.ConfigKind, name string) bool {
	base := strings.TrimSuffix(name, workload.AltCopyName(""))
	for _, n := range []string{name, base, workload.AltCopyName(base)} {
		if read[workload.ConfigRef{Kind: kind, Name: n}.Key()] {
			return true
		}
	}
	return false
}
