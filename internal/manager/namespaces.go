package manager

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
)

// CheckNamespaceName returns an error naming ns when it cannot be a
// namespace's name: a mistyped --watch-namespaces entry would otherwise
// make a manager that watches a namespace that never exists, and serves
// nothing, without a word.
func CheckNamespaceName(ns string) error {
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
	}
	return nil
}

// watchNamespaces checks the namespaces of Options.WatchNamespaces and
// returns them sorted, without duplicates; nil means every namespace.
func watchNamespaces(list []string) ([]string, error) {
	var out []string
	for _, ns := range list {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if err := CheckNamespaceName(ns); err != nil {
			return nil, fmt.Errorf("--watch-namespaces: %w", err)
		}
		out = append(out, ns)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// cacheNamespaces is the cache's DefaultNamespaces for the watched
// namespaces: every namespaced informer then lists and watches those
// namespaces only, so the manager needs no cluster-wide read of namespaced
// objects. Cluster-scoped kinds (the CRD metadata watch) are still watched
// cluster-wide. nil, every namespace, when none are given.
func cacheNamespaces(watched []string) map[string]cache.Config {
	if len(watched) == 0 {
		return nil
	}
	out := make(map[string]cache.Config, len(watched))
	for _, ns := range watched {
		out[ns] = cache.Config{}
	}
	return out
}
