package rollout

import (
	"maps"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-dev/sluice/pkg/workload"
)

// revisions remembers the revision of each Rollout's target, so that a
// reconcile hashes the target's pod template only when it may have
// changed. Hashing is a JSON encoding of the whole template: done in every
// reconcile, it was 4 % of the manager's CPU with 100 releases at once,
// most reconciles being woken by the Deployment controller's status
// updates, which leave the template as it was. The API server moves a
// workload's generation with every change of its spec, the template
// included; the revision is known again for the same object (UID) at the
// same generation with the same configuration checksums. The zero value
// is ready to use.
type revisions struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]revisionEntry
}

type revisionEntry struct {
	uid        types.UID
	generation int64
	configs    map[string]string
	revision   string
}

// of returns the revision of target, the target of the Rollout named key,
// with the checksums of the configuration it uses.
func (r *revisions) of(key types.NamespacedName, target workload.Workload, configs map[string]string) (string, error) {
	obj := target.Object()
	uid, gen := obj.GetUID(), obj.GetGeneration()
	r.mu.Lock()
	e, ok := r.entries[key]
	r.mu.Unlock()
	if ok && gen != 0 && e.uid == uid && e.generation == gen && maps.Equal(e.configs, configs) {
		return e.revision, nil
	}
	rev, err := workload.Revision(target.Template(), configs)
	if err != nil || gen == 0 {
		// An object without a generation was never stored by an API server.
		return rev, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[types.NamespacedName]revisionEntry{}
	}
	r.entries[key] = revisionEntry{uid: uid, generation: gen, configs: maps.Clone(configs), revision: rev}
	return rev, nil
}

// forget drops what is known of a Rollout gone.
func (r *revisions) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.entries, key)
}
