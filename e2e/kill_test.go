//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// hookCounter is a webhook receiver that answers 200 and counts the calls
// of each hook type with their idempotency keys.
type hookCounter struct {
	mu    sync.Mutex
	calls map[string][]string // hook name -> idempotency keys, in order
	url   string
}

func startHookCounter(t *testing.T, c *cluster.Cluster) *hookCounter {
	t.Helper()
	h := &hookCounter{calls: map[string][]string{}}
	// On the host, where the managers (pods on the real node) reach it.
	ln, err := net.Listen("tcp", c.HostAddr()+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Metadata       map[string]string `json:"metadata"`
			IdempotencyKey string            `json:"idempotencyKey"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			key = p.IdempotencyKey
		}
		h.mu.Lock()
		h.calls[p.Metadata["hook"]] = append(h.calls[p.Metadata["hook"]], key)
		h.mu.Unlock()
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h.url = "http://" + ln.Addr().String() + "/"
	return h
}

// keys returns the idempotency keys of a hook's calls.
func (h *hookCounter) keys(hook string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls[hook]...)
}

// distinct counts the distinct keys.
func distinct(keys []string) int {
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	return len(seen)
}

// TestManagerKilledFiveTimesDuringARelease: the leading manager is killed
// with SIGKILL five times at random points of a release with pre-rollout,
// rollout and post-rollout hooks (through containerd, as a crash or an
// out-of-memory kill: the Lease is not handed over, so the other replica
// takes it once it expires, and the kubelet restarts the killed container).
// The managers are the story's own Sluice, so the stories beside it keep
// theirs; it runs with a 6s Lease instead of the default 15s so that the
// five takeovers fit the suite's time. The release completes from its status:
// the route's weights go 10..50 once each, never back, none skipped;
// Promoted is recorded once; no request fails;
// and each once-per-release hook is called once, or again only with the
// same idempotency key (at-least-once, docs/webhooks.md).
func TestManagerKilledFiveTimesDuringARelease(t *testing.T) {
	t.Parallel()
	s := NewStory(t, "manager-killed")
	hooks := startHookCounter(t, s.c)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	var changed time.Time
	var routeWeights func() []string
	var takeovers []time.Duration
	var sl *cluster.Sluice
	s.Given("a Sluice of the story's own (two managers), app v1 behind a canary Rollout (steps 10..50, 12s each) with counted pre-rollout, rollout and post-rollout hooks, under load", func() {
		sl = s.InstallOwnSluice("--leader-election-lease-duration=6s", "--leader-election-renew-deadline=4s", "--leader-election-retry-period=1s")
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2})
		hook := func(name string, t sluicev1.HookType) sluicev1.Webhook {
			return sluicev1.Webhook{Name: name, Type: t, URL: hooks.url, Metadata: map[string]string{"hook": name}}
		}
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(10, 20, 30, 40, 50), &sluicev1.Analysis{
			// Long enough for five kills, each waiting out the Lease.
			Interval: &metav1.Duration{Duration: 12 * time.Second}, Threshold: 2,
			Webhooks: []sluicev1.Webhook{hook("pre", sluicev1.HookPreRollout), hook("step", sluicev1.HookRollout), hook("post", sluicev1.HookPostRollout)},
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		routeWeights = s.RecordRouteWeights()
		s.StartLoad(50)
		s.WaitServing("v1")
	}).When(fmt.Sprintf("v2 is released and the manager is killed 5 times at random points (seed %d)", seed), func() {
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2})
		for i := range 5 {
			// Each kill lands while the manager leads and works: a new
			// manager first waits for the dead one's Lease to expire.
			s.Eventually(60*time.Second, "a leader", func() (bool, string) {
				return sl.LeaseHolder(s.ctx) != "", "no holder"
			})
			time.Sleep(time.Duration(300+rng.IntN(2500)) * time.Millisecond)
			st := s.Status()
			s.Logf("kill %d at phase %s weight %d step %d", i+1, st.Phase, st.CanaryWeight, st.CurrentStepIndex)
			if st.Phase == sluicev1.PhaseSucceeded {
				s.Fatalf("kill %d came after the release ended: the story did not test kills during a release", i+1)
			}
			holder := sl.LeaseHolder(s.ctx)
			killed := time.Now()
			pod, err := sl.CrashLeader(s.ctx)
			s.Must(err, "killing the leader")
			s.Eventually(60*time.Second, "a new leader", func() (bool, string) {
				h := sl.LeaseHolder(s.ctx)
				return h != "" && h != holder, "holder " + h
			})
			takeovers = append(takeovers, time.Since(killed).Round(10*time.Millisecond))
			// The crashed pod is replaced by a fresh one, ready before the
			// next kill, so that a manager is always there to lead (the
			// kubelet restarts a killed container in place only after a
			// crash back-off that doubles each time).
			s.Must(sl.DeletePod(s.ctx, pod), "replacing the crashed pod")
			s.Must(sl.WaitReady(s.ctx), "waiting for the managers")
		}
		s.Figure("leader killed -> another manager leads (each kill)", fmt.Sprint(takeovers))
	}).Then("the release completes: Succeeded, post-rollout hooks run", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		s.Eventually(30*time.Second, "post-rollout hook called", func() (bool, string) {
			return len(hooks.keys("post")) > 0, "not yet"
		})
		s.WaitServing("v2")
	}).And("pre-rollout and post-rollout were each called for one key; rollout hooks carried a key per step check", func() {
		for _, name := range []string{"pre", "post"} {
			keys := hooks.keys(name)
			s.Figure(name+"-rollout calls (distinct keys)", fmt.Sprintf("%d (%d)", len(keys), distinct(keys)))
			if distinct(keys) != 1 || keys[0] == "" {
				s.Fatalf("%s-rollout hook: calls with keys %v, want every call to carry one and the same key", name, keys)
			}
		}
		steps := hooks.keys("step")
		sorted := append([]string(nil), steps...)
		sort.Strings(sorted)
		s.Figure("rollout hook calls (distinct keys)", fmt.Sprintf("%d (%d)", len(steps), distinct(steps)))
		if distinct(steps) < 5 {
			s.Fatalf("rollout hook keys %s: want at least one per step", strings.Join(sorted, ","))
		}
	}).And("the route's weights went 10, 20, 30, 40, 50 once each, never back, and the promotion was recorded once", func() {
		// The split per step is measured by the stories with longer steps
		// (2s steps leave too few answers per window).
		s.ExpectForwardWeights(routeWeights(), "100/0 90/10 80/20 70/30 60/40 50/50 100/0")
		if n := s.EventCount("Promoted"); n != 1 {
			s.Fatalf("Promoted recorded %d times, want 1", n)
		}
	}).And("no request failed, the kills included", func() {
		s.ExpectNoFailedRequests(changed)
	})
}
