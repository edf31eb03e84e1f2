// Package intern lets the objects in Sluice's cache share the strings they
// repeat. A decoded object holds its own copy of every string: each
// Service, Deployment and EndpointSlice of a fleet carries the same label
// keys ("app.kubernetes.io/managed-by", "kubernetes.io/service-name", ...),
// annotation keys, namespace and owner kinds, and at 10,000 Rollouts those
// copies are several percent of the manager's heap. The cache transforms
// pass each object through Object, which swaps those strings for one shared
// copy. Values are the same, so nothing that reads the cache can tell.
//
// The table is bounded: when it holds maxEntries strings it starts afresh.
// Strings already handed out stay valid (they are ordinary immutable
// strings); only later copies stop being shared with them. So a tenant
// creating objects with ever new label keys costs at most the table, never
// an ever-growing one.
package intern

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxEntries bounds the table: about 1 MiB of headers and map slots, plus
// the strings themselves, which the cached objects would hold anyway.
const maxEntries = 1 << 14

var table = struct {
	sync.Mutex
	m map[string]string
}{m: make(map[string]string)}

// String returns the table's copy of s, adding s if it has none.
func String(s string) string {
	if s == "" {
		return s
	}
	table.Lock()
	defer table.Unlock()
	if c, ok := table.m[s]; ok {
		return c
	}
	if len(table.m) >= maxEntries {
		clear(table.m)
	}
	table.m[s] = s
	return s
}

// Map returns m with its keys and values shared (labels, selectors).
func Map(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[String(k)] = String(v)
	}
	return out
}

// Keys returns m with only its keys shared (annotations, whose values are
// often long and unlike any other's).
func Keys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[String(k)] = v
	}
	return out
}

// Meta shares the strings of an object's metadata that repeat across
// objects: the namespace, label keys and values, annotation keys,
// finalizers and the API versions and kinds of its owners. Names, UIDs and
// resource versions are each object's own and are left alone.
func Meta(o metav1.Object) {
	o.SetNamespace(String(o.GetNamespace()))
	o.SetLabels(Map(o.GetLabels()))
	o.SetAnnotations(Keys(o.GetAnnotations()))
	if fs := o.GetFinalizers(); len(fs) > 0 {
		for i := range fs {
			fs[i] = String(fs[i])
		}
	}
	if refs := o.GetOwnerReferences(); len(refs) > 0 {
		for i := range refs {
			refs[i].APIVersion = String(refs[i].APIVersion)
			refs[i].Kind = String(refs[i].Kind)
		}
	}
}

// Transform runs next, then shares the metadata strings of what it
// returns: the cache transform wrapper for every kind Sluice caches.
func Transform(next func(any) (any, error)) func(any) (any, error) {
	return func(obj any) (any, error) {
		if next != nil {
			var err error
			if obj, err = next(obj); err != nil {
				return obj, err
			}
		}
		if o, ok := obj.(metav1.Object); ok {
			Meta(o)
		}
		return obj, nil
	}
}
