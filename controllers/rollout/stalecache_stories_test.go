package rollout_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// watchGate holds back, while closed, the events of the manager's watch of
// one resource (deployments, services): its cache of them falls behind the
// API server, as it does for a moment after every write and for longer on
// a loaded one.
type watchGate struct {
	next     http.RoundTripper
	resource string

	mu     sync.Mutex
	closed bool
	opened *sync.Cond
}

func newWatchGate(resource string) *watchGate {
	g := &watchGate{resource: resource}
	g.opened = sync.NewCond(&g.mu)
	return g
}

func (g *watchGate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := g.next.RoundTrip(r)
	if err == nil && r.URL.Query().Get("watch") == "true" && strings.HasSuffix(r.URL.Path, "/"+g.resource) {
		resp.Body = &gatedBody{ReadCloser: resp.Body, gate: g}
	}
	return resp, err
}

func (g *watchGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

func (g *watchGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = false
	g.opened.Broadcast()
}

// gatedBody passes on what it read only while the gate is open, so that an
// event that arrives while it is closed waits.
type gatedBody struct {
	io.ReadCloser
	gate *watchGate
}

func (b *gatedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.gate.mu.Lock()
	for b.gate.closed {
		b.gate.opened.Wait()
	}
	b.gate.mu.Unlock()
	return n, err
}

// newGatedStory starts a story whose manager's watch of resource goes
// through a gate, and whose requests for the story's namespace are logged.
func newGatedStory(t *testing.T, resource string) (*story, *watchGate, *requestLog) {
	gate, log := newWatchGate(resource), &requestLog{}
	s := newStoryWrapped(t, manager.Options{}, func(rt http.RoundTripper) http.RoundTripper {
		gate.next = rt
		log.next = gate
		return log
	})
	log.ns = s.ns
	// A gate left closed would hold the manager's shutdown.
	t.Cleanup(gate.open)
	return s, gate, log
}

// releaseToTheGate releases podinfo:2.0 blue/green in a gated story and
// closes the gate once the analysis runs on a ready canary (the manager's
// cache has seen it ready): the promotion is then made with a cache of
// Deployments that learns nothing more. start is where the release's
// requests begin in the log.
func releaseToTheGate(t *testing.T) (s *story, gate *watchGate, log *requestLog, start int) {
	s, gate, log = newGatedStory(t, "deployments")
	s.deploy("podinfo", "podinfo:1.0")
	log.initialized(s, "podinfo", iterations(3))
	start = log.len()
	s.setImage("podinfo", "podinfo:2.0")
	s.eventually(storyTimeout, "the analysis of the canary", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.Phase != sluicev1.PhaseProgressing || ro.Status.StepStartedAt == nil {
			return fmt.Errorf("phase %s, step started %v", ro.Status.Phase, ro.Status.StepStartedAt)
		}
		return nil
	})
	gate.close()
	return s, gate, log, start
}

// releaseWithTheGateClosed deploys podinfo:1.0 in a story whose manager's
// watch of resource goes through a gate, closes the gate, releases
// podinfo:2.0 and returns once the log has the manager's request req
// ("METHOD path code", %s for the story's namespace): a write whose
// object the manager's cache does not see. start is where the release's
// requests begin in the log.
func releaseWithTheGateClosed(t *testing.T, resource, what, req string) (s *story, gate *watchGate, log *requestLog, start int) {
	s, gate, log = newGatedStory(t, resource)
	s.deploy("podinfo", "podinfo:1.0")
	log.initialized(s, "podinfo", iterations(3))
	start = log.len()
	gate.close()
	s.setImage("podinfo", "podinfo:2.0")
	req = fmt.Sprintf(req, s.ns)
	s.eventually(storyTimeout, what, func() error {
		if !slices.Contains(log.since(start), req) {
			return fmt.Errorf("no %q yet", req)
		}
		return nil
	})
	return s, gate, log, start
}

// wakeWhileBehind wakes three reconciles of the Rollout, 300 ms apart:
// reconciles that run while a closed gate holds the cache back.
func (s *story) wakeWhileBehind(name string) {
	s.t.Helper()
	for range 3 {
		s.wake(name)
		time.Sleep(300 * time.Millisecond)
	}
}

// requests are those of reqs made with method whose path and answer end
// with suffix ("/httproutes 409").
func requests(reqs []string, method, suffix string) []string {
	var out []string
	for _, r := range reqs {
		if strings.HasPrefix(r, method+" ") && strings.HasSuffix(r, suffix) {
			out = append(out, r)
		}
	}
	return out
}

// wake sends the Rollout a change that wakes a reconcile at once.
func (s *story) wake(name string) {
	s.t.Helper()
	ro := s.getRollout(name)
	patch := client.MergeFrom(ro.DeepCopy())
	if ro.Annotations == nil {
		ro.Annotations = map[string]string{}
	}
	ro.Annotations["story.sluice.dev/wake"] = time.Now().Format(time.RFC3339Nano)
	s.must(k8sClient.Patch(s.ctx, ro, patch))
}

func conflictsOn(reqs []string, resource string) []string {
	var out []string
	for _, r := range reqs {
		if strings.Contains(r, "/"+resource+"/") && strings.HasSuffix(r, " 409") {
			out = append(out, r)
		}
	}
	return out
}

// After the manager gives the primary the new template, its cache of the
// primary still holds the old one for a moment (on a loaded API server, for
// long). A reconcile woken then must not take the old template for a
// promotion still to do: written again from the old copy, the primary is
// refused with 409 Conflict, and the release tells a ReconcileError that
// never was.
func TestAReconcileWokenBeforeTheCacheSeesThePromotedPrimaryDoesNotWriteItAgain(t *testing.T) {
	s, gate, log, start := releaseToTheGate(t)
	promoted := "PUT /apis/apps/v1/namespaces/" + s.ns + "/deployments/podinfo-primary 200"
	s.eventually(storyTimeout, "the primary given the new template", func() error {
		if !slices.Contains(log.since(start), promoted) {
			return fmt.Errorf("no %q yet", promoted)
		}
		return nil
	})
	// Reconciles woken while the cache holds the old primary.
	s.wakeWhileBehind("podinfo")
	gate.open()
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	if c := conflictsOn(log.since(start), "deployments"); len(c) > 0 {
		t.Errorf("the primary was written again from a stale copy:\n%s", strings.Join(c, "\n"))
	}
	if got := s.eventReasons("podinfo"); slices.Contains(got, "ReconcileError") {
		t.Errorf("events %v: a ReconcileError told for a cache that was only behind", got)
	}
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image %s, want podinfo:2.0", img)
	}
}

// Someone else's write (an admission controller's label, a kubectl
// annotate) that the cache has not seen yet makes the promotion's write
// conflict: the manager looks again once its cache has it, and tells no
// error, for nothing went wrong.
func TestAPromotionThatConflictsWithAWriteTheCacheHasNotSeenTriesAgainQuietly(t *testing.T) {
	s, gate, log, start := releaseToTheGate(t)
	p := s.getDeployment("podinfo-primary")
	patch := client.MergeFrom(p.DeepCopy())
	p.Annotations["team.example.com/owner"] = "payments"
	s.must(k8sClient.Patch(s.ctx, p, patch))
	s.eventually(storyTimeout, "the promotion refused", func() error {
		if len(conflictsOn(log.since(start), "deployments")) == 0 {
			return fmt.Errorf("no conflict yet")
		}
		return nil
	})
	gate.open()
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	if got := s.eventReasons("podinfo"); slices.Contains(got, "ReconcileError") {
		t.Errorf("events %v: a ReconcileError told for a write that only had to be made again", got)
	}
	p = s.getDeployment("podinfo-primary")
	if img := p.Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image %s, want podinfo:2.0", img)
	}
	if p.Annotations["team.example.com/owner"] != "payments" {
		t.Errorf("the other writer's annotation was lost: %v", p.Annotations)
	}
}

// After the manager points the apex Service at the canary, its cache of the
// Service holds the old selector for a moment (on a loaded API server, for
// long). A reconcile woken then must not take the old selector for a switch
// still to make: it would patch the Service again, a request for nothing
// (0.1 to 0.3 of them a release with 100 releases at once).
func TestAReconcileWokenBeforeTheCacheSeesTheSwitchedApexDoesNotSwitchItAgain(t *testing.T) {
	s, gate, log, start := releaseWithTheGateClosed(t, "services", "the apex Service switched to the canary", "PATCH /api/v1/namespaces/%s/services/podinfo 200")
	switched := "PATCH /api/v1/namespaces/" + s.ns + "/services/podinfo 200"
	// Reconciles woken while the cache holds the apex before the switch.
	s.wakeWhileBehind("podinfo")
	if n := countOf(log.since(start), switched); n != 1 {
		t.Errorf("the apex Service was patched %d times before the cache had the first switch:\n%s", n, strings.Join(log.since(start), "\n"))
	}
	gate.open()
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	// To the canary, and back to the primary once it runs the new version.
	if n := countOf(log.since(start), switched); n != 2 {
		t.Errorf("the release patched the apex Service %d times, want 2:\n%s", n, strings.Join(log.since(start), "\n"))
	}
	if got := s.eventReasons("podinfo"); slices.Contains(got, "ReconcileError") {
		t.Errorf("events %v: a ReconcileError told for a cache that was only behind", got)
	}
	s.must(s.apexSelects("podinfo", map[string]string{"app": "podinfo-primary"}))
}

// The first reconcile of a Rollout creates its three Services; a reconcile
// woken before the cache has them (by the primary's creation, say) finds
// none. It must not create them again, and a create refused as existing
// (past the manager's memory of its creates) must not be taken for someone
// else's Service: that told the user, with a Stalled condition and a
// Warning, to remove Sluice's own Service.
func TestServicesTheCacheHasNotSeenYetAreNotTakenForSomeoneElses(t *testing.T) {
	s, gate, log := newGatedStory(t, "services")
	// Another Rollout first: once it is initialized, the manager's caches
	// have synced (the initial list comes through the watch).
	s.deploy("other", "other:1.0")
	s.initialized("other")
	s.deploy("podinfo", "podinfo:1.0")
	gate.close()
	start := log.len()
	s.rollout("podinfo")
	created := "POST /api/v1/namespaces/" + s.ns + "/services 201"
	s.eventually(storyTimeout, "the Services created", func() error {
		if n := countOf(log.since(start), created); n < 3 {
			return fmt.Errorf("%d of 3 created", n)
		}
		return nil
	})
	// Reconciles woken while the cache has none of them.
	s.wakeWhileBehind("podinfo")
	stalled := s.getRollout("podinfo").Status.Conditions
	gate.open()
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)

	if got := s.eventReasons("podinfo"); slices.Contains(got, "ServiceConflict") || slices.Contains(got, "ReconcileError") {
		t.Errorf("events %v: the Rollout's own Services were taken for someone else's, or an error told for a cache that was only behind: %q",
			got, append(s.eventNotes("podinfo", "ServiceConflict"), s.eventNotes("podinfo", "ReconcileError")...))
	}
	for _, c := range stalled {
		if c.Type == sluicev1.ConditionStalled && c.Status == metav1.ConditionTrue {
			t.Errorf("Stalled while the cache was behind: %s: %s", c.Reason, c.Message)
		}
	}
	if n := countOf(log.since(start), created); n != 3 {
		t.Errorf("%d Services created, want 3", n)
	}
	// The manager remembers what it created: no create of them again,
	// refused as existing.
	if n := countOf(log.since(start), "POST /api/v1/namespaces/"+s.ns+"/services 409"); n != 0 {
		t.Errorf("%d creates of Services the manager had created already", n)
	}
}

// The same for the route a router generates: a reconcile woken before the
// cache has the route an earlier one created must not create it again, nor
// tell a refusal as an error: that was a ReconcileError event, and the
// Rollout waited out the error's backoff.
func TestRoutesTheCacheHasNotSeenYetAreNoError(t *testing.T) {
	for _, kind := range routerKinds {
		t.Run(kind, func(t *testing.T) {
			resource := map[string]string{"gatewayAPI": "httproutes", "istio": "virtualservices"}[kind]
			createdOnceWhileBehind(t, resource, withRouter(kind), withCanaryWeights(50))
		})
	}
}

// The first reconcile of a Rollout creates its primary; a reconcile woken
// before the cache has it (by the Rollout's own status write, say) must
// not create it again, nor tell a refusal as an error.
func TestAPrimaryTheCacheHasNotSeenYetIsNotCreatedAgain(t *testing.T) {
	createdOnceWhileBehind(t, "deployments")
}

// createdOnceWhileBehind creates a Rollout while a gate holds back the
// manager's watch of resource, wakes reconciles once the manager has
// created its object of that resource, and checks that it created it once
// and told no error.
func createdOnceWhileBehind(t *testing.T, resource string, opts ...rolloutOpt) {
	t.Helper()
	s, gate, log := newGatedStory(t, resource)
	// Another Rollout like it first: once it is initialized, the manager
	// watches the resource and its cache has synced. podinfo's target is
	// created before it, so that its watch event came before those that
	// initialized the other: a target created just before the gate closed
	// could be held back with the rest, and the Rollout see no target.
	s.deploy("other", "other:1.0")
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("other", opts...)
	gate.close()
	start := log.len()
	s.rollout("podinfo", opts...)
	created := func() int { return len(requests(log.since(start), "POST", "/"+resource+" 201")) }
	s.eventually(storyTimeout, "the "+resource+" created", func() error {
		if created() == 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// Reconciles woken while the cache does not have it.
	s.wakeWhileBehind("podinfo")
	gate.open()
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, storyTimeout)

	if got := s.eventReasons("podinfo"); slices.Contains(got, "ReconcileError") {
		t.Errorf("events %v: an error told for a cache that was only behind: %q", got, s.eventNotes("podinfo", "ReconcileError"))
	}
	if n := created(); n != 1 {
		t.Errorf("%d %s created, want 1", n, resource)
	}
	// The manager remembers what it created: no create of it again,
	// refused as existing.
	if refused := requests(log.since(start), "POST", "/"+resource+" 409"); len(refused) > 0 {
		t.Errorf("creates of what the manager had created already: %v", refused)
	}
}

// A Rollout deleted a moment after it adopted the team's Service, before
// its cache of Services (which holds Sluice's only) saw the adoption,
// still hands the Service back. Before, the handover looked for it in that
// cache, found none, and left the Rollout as its controller: the garbage
// collector would have deleted the team's Service with the Rollout.
func TestAServiceAdoptedJustBeforeTheRolloutIsDeletedIsHandedBack(t *testing.T) {
	s, gate, _ := newGatedStory(t, "services")
	s.deploy("podinfo", "podinfo:1.0")
	s.teamService("podinfo", nil)
	// Another Rollout first, so that the manager's caches have synced
	// (their first list is a watch too, which a closed gate would hold).
	s.deploy("warm", "warm:1.0")
	s.initialized("warm")
	gate.close()
	s.rollout("podinfo", func(ro *sluicev1.Rollout) { ro.Spec.Service.Adopt = true })
	s.eventually(storyTimeout, "the Service adopted", func() error {
		if svc := s.getService("podinfo"); !metav1.IsControlledBy(svc, s.getRollout("podinfo")) {
			return fmt.Errorf("owners %v", svc.OwnerReferences)
		}
		return nil
	})

	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))
	s.eventually(storyTimeout, "the Rollout gone", func() error { return s.gone("podinfo") })
	svc := s.getService("podinfo")
	if len(svc.OwnerReferences) != 0 || svc.Annotations[traffic.AdoptedAnnotation] != "" {
		t.Errorf("the team's Service kept the deleted Rollout: owners %v, annotations %v", svc.OwnerReferences, svc.Annotations)
	}
	if err := s.apexSelects("podinfo", targetPods); err != nil {
		t.Error(err)
	}
}

// While the API server serves a fleet's releases, the manager's watch of
// Rollouts falls seconds behind its own status writes, and every event of
// a Rollout's Deployments wakes a reconcile meanwhile. One that finds the
// cached Rollout behind its own write does not decide from it: it looks
// again. It looked every 200 ms until the update came, each look CPU that
// the watch bringing the update needed (29 looks a release at 1,000
// releases at once); it now looks less often with each look in a row, and
// the update, when it comes, wakes it at once.
func TestARolloutWhoseCacheLagsItsOwnWriteIsNotPolled(t *testing.T) {
	// The new image wakes the Rollout through its Deployment's watch: the
	// manager writes the Rollout's status, which its cache does not see.
	s, gate, _, _ := releaseWithTheGateClosed(t, "rollouts", "a status write the cache does not see", "PATCH /apis/sluice.dev/v1alpha1/namespaces/%s/rollouts/podinfo/status 200")
	before := rolloutReconciles(t)
	// A Deployment event wakes a reconcile that finds the Rollout behind.
	s.editDeployment("podinfo", func(d *appsv1.Deployment) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["story.sluice.dev/wake"] = "1"
	})
	time.Sleep(4 * time.Second)
	looks := rolloutReconciles(t) - before
	gate.open()
	t.Logf("%v reconciles in 4 s of a cache behind the Rollout's own write", looks)
	// Every 200 ms, that is 20 looks or more; doubling from 200 ms, 5.
	if looks > 10 {
		t.Errorf("%v reconciles in 4 s of a cache behind the Rollout's own write: it is polled", looks)
	}
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
}

// rolloutReconciles reads how many reconciles the Rollout controllers have
// run in this process (controller-runtime's count; one story at a time).
func rolloutReconciles(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "rollout" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
