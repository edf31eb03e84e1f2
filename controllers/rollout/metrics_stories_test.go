package rollout_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/cache"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/internal/manager"
)

// Prometheus scrapes the manager every 30 s or so. At 10,000 Rollouts a
// scrape that listed them from the cache copied each one (824 bytes of
// struct, even without a deep copy): 8 MB of garbage a scrape. A scrape
// now reads the cached objects themselves, and a cache of several
// namespaces, which has no single store to read, is still listed whole.
func TestAScrapeReadsTheCachedRolloutsWithoutCopyingThem(t *testing.T) {
	s := newStory(t)
	s.rollout("web")
	s.rollout("api")

	for _, c := range []struct {
		what       string
		namespaces map[string]cache.Config
		sameObject bool
	}{
		{what: "the cache of the whole cluster", sameObject: true},
		{what: "a cache of two namespaces", namespaces: map[string]cache.Config{s.ns: {}, "default": {}}},
	} {
		t.Run(c.what, func(t *testing.T) {
			ctx, cancel := context.WithCancel(s.ctx)
			defer cancel()
			cached, err := cache.New(env.Config, cache.Options{Scheme: manager.Scheme(), DefaultNamespaces: c.namespaces})
			s.must(err)
			go func() { _ = cached.Start(ctx) }()
			list := rollout.CachedRollouts(cached)
			var first []*sluicev1.Rollout
			s.eventually(storyTimeout, "both Rollouts listed from "+c.what, func() error {
				ros, err := list(ctx)
				if err != nil {
					return err
				}
				first = inNamespace(ros, s.ns)
				if names := namesOf(first); !slices.Equal(names, []string{"api", "web"}) {
					return fmt.Errorf("listed %v", names)
				}
				return nil
			})
			again, err := list(ctx)
			s.must(err)
			second := inNamespace(again, s.ns)
			for i := range first {
				if same := first[i] == second[i]; same != c.sameObject {
					t.Errorf("%s listed twice: the same object each time is %v, want %v", first[i].Name, same, c.sameObject)
				}
			}
		})
	}
	// A cache that has not synced lists no Rollout: the scrape goes on
	// with the other metrics.
	unstarted, err := cache.New(env.Config, cache.Options{Scheme: manager.Scheme()})
	s.must(err)
	if ros, err := rollout.CachedRollouts(unstarted)(s.ctx); err == nil {
		t.Errorf("a cache not started listed %d Rollouts, want an error", len(ros))
	}
}

func inNamespace(ros []*sluicev1.Rollout, ns string) []*sluicev1.Rollout {
	var out []*sluicev1.Rollout
	for _, ro := range ros {
		if ro.Namespace == ns {
			out = append(out, ro)
		}
	}
	slices.SortFunc(out, func(a, b *sluicev1.Rollout) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func namesOf(ros []*sluicev1.Rollout) []string {
	names := make([]string, len(ros))
	for i, ro := range ros {
		names[i] = ro.Name
	}
	return names
}
