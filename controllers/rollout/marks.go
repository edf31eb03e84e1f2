package rollout

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// marks remembers one word per Rollout, in memory only, for what is done
// once per state: a config prune for a state at rest, a refusal told. A
// manager that restarts forgets them and at most does the pass or tells
// the refusal once more; nothing of a Rollout's state lives here.
type marks struct {
	mu sync.Mutex
	m  map[types.NamespacedName]string
}

// has reports whether key is marked with v.
func (p *marks) has(key types.NamespacedName, v string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[key] == v
}

func (p *marks) mark(key types.NamespacedName, v string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[types.NamespacedName]string{}
	}
	p.m[key] = v
}

func (p *marks) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, key)
}
