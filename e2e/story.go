//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// Story is one end-to-end scenario told as Given/When/Then steps. Each
// step is logged with the time since the story began; a failing step
// fails the test naming the step, with the Rollout's status, its events
// and the end of the manager's log.
type Story struct {
	t     *testing.T
	c     *cluster.Cluster
	ctx   context.Context
	begin time.Time
	step  string
	// failures are the story's failure messages, said again after the
	// dumps so that the end of a long log shows why it failed.
	failures   []string
	failuresMu sync.Mutex

	// NS is the story's namespace; Host its host name on the Gateway.
	NS, Host string
	App      cluster.App
	Rollout  *sluicev1.Rollout
	Load     *cluster.Load

	rec *statusRecorder
	// sluice is the story's own Sluice (InstallOwnSluice); nil when the
	// cluster's main one serves its Rollouts.
	sluice *cluster.Sluice
}

// NewStoryOn creates the story's namespace on cluster env; everything in
// it is deleted at the end.
func NewStoryOn(t *testing.T, env *cluster.Cluster, name string) *Story {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &Story{t: t, c: env, ctx: ctx, begin: time.Now(), NS: name, Host: name + ".e2e.sluice.test"}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if s.Load != nil {
			s.Load.Stop()
		}
		if t.Failed() {
			t.Logf("rollout status:\n%s", s.statusDump())
			t.Logf("events:\n%s", strings.Join(s.eventLines(), "\n"))
			if s.sluice != nil {
				t.Logf("manager log of %s (end):\n%s", s.sluice.Release, s.sluice.Log(6000))
			} else {
				t.Logf("manager log (end):\n%s", env.ManagerLog(6000))
			}
			s.failuresMu.Lock()
			t.Logf("the story failed:\n%s", strings.Join(s.failures, "\n"))
			s.failuresMu.Unlock()
		}
		_ = env.Client.Delete(context.Background(), ns)
	})
	return s
}

func (s *Story) do(kind, what string, fn func()) *Story {
	s.t.Helper()
	s.step = kind + " " + what
	s.t.Logf("%7.2fs %s", time.Since(s.begin).Seconds(), s.step)
	fn()
	return s
}

// Given, When, Then and And run one step.
func (s *Story) Given(what string, fn func()) *Story { s.t.Helper(); return s.do("GIVEN", what, fn) }
func (s *Story) When(what string, fn func()) *Story  { s.t.Helper(); return s.do("WHEN", what, fn) }
func (s *Story) Then(what string, fn func()) *Story  { s.t.Helper(); return s.do("THEN", what, fn) }
func (s *Story) And(what string, fn func()) *Story   { s.t.Helper(); return s.do(" AND", what, fn) }

// Fatalf fails the story in its current step.
func (s *Story) Fatalf(format string, args ...any) {
	s.t.Helper()
	msg := fmt.Sprintf("[%s] %s", s.step, fmt.Sprintf(format, args...))
	s.failuresMu.Lock()
	s.failures = append(s.failures, msg)
	s.failuresMu.Unlock()
	s.t.Fatal(msg)
}

// Errorf fails the story in its current step and lets it go on.
func (s *Story) Errorf(format string, args ...any) {
	s.t.Helper()
	msg := fmt.Sprintf("[%s] %s", s.step, fmt.Sprintf(format, args...))
	s.failuresMu.Lock()
	s.failures = append(s.failures, msg)
	s.failuresMu.Unlock()
	s.t.Error(msg)
}

// Logf logs a line of the story.
func (s *Story) Logf(format string, args ...any) {
	s.t.Helper()
	s.t.Logf("%7.2fs   %s", time.Since(s.begin).Seconds(), fmt.Sprintf(format, args...))
}

// Figure logs a measured figure (never asserted).
func (s *Story) Figure(name string, v any) {
	s.t.Helper()
	s.t.Logf("FIGURE %s: %v", name, v)
}

// Must fails the story on err.
func (s *Story) Must(err error, what string) {
	s.t.Helper()
	if err != nil {
		s.Fatalf("%s: %v", what, err)
	}
}

// Eventually polls cond every 100ms until it holds or timeout passes.
func (s *Story) Eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			s.Fatalf("%s: not within %s (last: %s)", what, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- the app and its Rollout ----

// DeployApp creates the app's Deployment and waits for its pods to be
// ready and answering.
func (s *Story) DeployApp(app cluster.App) {
	s.t.Helper()
	app.Namespace = s.NS
	app.Image = s.c.Image("testapp")
	s.App = app
	s.Must(s.c.Client.Create(s.ctx, app.Deployment()), "creating the Deployment")
	s.WaitDeploymentReady(app.Name)
}

// WaitDeploymentReady waits until the Deployment's replicas are all
// updated and ready.
func (s *Story) WaitDeploymentReady(name string) time.Time {
	s.t.Helper()
	var at time.Time
	s.Eventually(60*time.Second, "Deployment "+name+" ready", func() (bool, string) {
		d := &appsv1.Deployment{}
		if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: name}, d); err != nil {
			return false, err.Error()
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		ok := st.ObservedGeneration == d.Generation && st.UpdatedReplicas == want && st.ReadyReplicas == want && st.Replicas == want
		at = time.Now()
		return ok, fmt.Sprintf("%+v", st)
	})
	return at
}

// CreateRollout creates the Rollout and starts recording its status.
func (s *Story) CreateRollout(ro *sluicev1.Rollout) {
	s.t.Helper()
	if s.sluice != nil {
		if ro.Labels == nil {
			ro.Labels = map[string]string{}
		}
		maps.Copy(ro.Labels, cluster.ShardLabels(s.NS))
	}
	s.Rollout = ro
	s.Must(s.c.Client.Create(s.ctx, ro), "creating the Rollout")
	var route func() (int32, bool)
	if r := ro.Spec.Routing; r != nil && r.GatewayAPI != nil {
		route = s.routeCanaryWeight
	}
	s.rec = recordStatus(s.ctx, s.c.Client, client.ObjectKeyFromObject(ro), route)
}

// InstallOwnSluice installs a Sluice for this story alone (release
// sluice-<namespace>, serving the shard named like the namespace) and has
// it serve the story's Rollouts, with more manager flags if given; call it
// before CreateRollout. A story that
// kills, stops or upgrades managers does it to these, so that the stories
// beside it keep their managers.
func (s *Story) InstallOwnSluice(managerArgs ...string) *cluster.Sluice {
	s.t.Helper()
	sl, err := s.c.InstallShard(s.ctx, s.NS, managerArgs...)
	s.Must(err, "installing the story's own Sluice")
	s.sluice = sl
	s.t.Cleanup(func() {
		// Its managers go with their namespace.
		_ = s.c.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sl.Namespace}})
	})
	return sl
}

// Status reads the Rollout's status.
func (s *Story) Status() sluicev1.RolloutStatus {
	s.t.Helper()
	ro := &sluicev1.Rollout{}
	s.Must(s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(s.Rollout), ro), "reading the Rollout")
	return ro.Status
}

// WaitPhase waits for the Rollout's phase.
func (s *Story) WaitPhase(phase sluicev1.Phase, timeout time.Duration) sluicev1.RolloutStatus {
	s.t.Helper()
	var st sluicev1.RolloutStatus
	s.Eventually(timeout, "phase "+string(phase), func() (bool, string) {
		st = s.Status()
		return st.Phase == phase, fmt.Sprintf("phase %s weight %d step %d: %s", st.Phase, st.CanaryWeight, st.CurrentStepIndex, st.Message)
	})
	return st
}

// UpdateApp changes the target Deployment's pod template to app's.
func (s *Story) UpdateApp(app cluster.App) time.Time {
	s.t.Helper()
	d := &appsv1.Deployment{}
	return s.updateTemplate(app, "Deployment", d, func() *corev1.PodTemplateSpec { return &d.Spec.Template })
}

// updateTemplate writes app into the pod template (template) of the target
// obj, a kind, retrying on a conflict with Sluice, which scales, parks and
// unparks targets.
func (s *Story) updateTemplate(app cluster.App, kind string, obj client.Object, template func() *corev1.PodTemplateSpec) time.Time {
	s.t.Helper()
	app.Namespace = s.NS
	app.Image = s.c.Image("testapp")
	s.App = app
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: app.Name}, obj); err != nil {
			return err
		}
		app.Apply(template())
		return s.c.Client.Update(s.ctx, obj)
	})
	s.Must(err, "updating the "+kind)
	return time.Now()
}

// DeployDaemonSet creates the app as a DaemonSet and waits until its pod
// on each node is ready.
func (s *Story) DeployDaemonSet(app cluster.App) {
	s.t.Helper()
	app.Namespace = s.NS
	app.Image = s.c.Image("testapp")
	s.App = app
	s.Must(s.c.Client.Create(s.ctx, app.DaemonSet()), "creating the DaemonSet")
	s.WaitDaemonSetReady(app.Name)
}

// WaitDaemonSetReady waits until the DaemonSet runs its current spec, ready,
// on every node it selects (at least one).
func (s *Story) WaitDaemonSetReady(name string) time.Time {
	s.t.Helper()
	var at time.Time
	s.Eventually(60*time.Second, "DaemonSet "+name+" ready", func() (bool, string) {
		d := &appsv1.DaemonSet{}
		if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: name}, d); err != nil {
			return false, err.Error()
		}
		st := d.Status
		ok := st.ObservedGeneration == d.Generation && st.DesiredNumberScheduled > 0 &&
			st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberReady == st.DesiredNumberScheduled
		at = time.Now()
		return ok, fmt.Sprintf("%+v", st)
	})
	return at
}

// UpdateDaemonSet changes the target DaemonSet's pod template to app's.
func (s *Story) UpdateDaemonSet(app cluster.App) time.Time {
	s.t.Helper()
	d := &appsv1.DaemonSet{}
	return s.updateTemplate(app, "DaemonSet", d, func() *corev1.PodTemplateSpec { return &d.Spec.Template })
}

// StartGRPCLoad calls the app's gRPC method rate times per second through
// the Gateway, with the story's host as the authority.
func (s *Story) StartGRPCLoad(rate int) {
	s.t.Helper()
	l, err := s.c.StartGRPCLoad(s.Host, rate)
	s.Must(err, "starting the gRPC load")
	s.Load = l
}

// StartLoad sends rate requests per second to the story's host.
func (s *Story) StartLoad(rate int) {
	s.t.Helper()
	s.Load = s.c.StartLoad(s.Host, rate, nil)
}

// Condition returns the status of a condition type ("" when absent).
func Condition(st sluicev1.RolloutStatus, typ string) (metav1.ConditionStatus, string) {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c.Status, c.Reason
		}
	}
	return "", ""
}

// EventReasons lists the reasons of the Rollout's events in order.
func (s *Story) EventReasons() []string {
	var out []string
	for _, e := range s.events() {
		out = append(out, e.Reason)
	}
	return out
}

func (s *Story) events() []corev1.Event {
	list := &corev1.EventList{}
	if err := s.c.Client.List(context.Background(), list, client.InNamespace(s.NS)); err != nil {
		return nil
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "Rollout" {
			out = append(out, e)
		}
	}
	// Events carry first/last timestamps; keep creation order.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].CreationTimestamp.Before(&out[j-1].CreationTimestamp); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (s *Story) eventLines() []string {
	var out []string
	for _, e := range s.events() {
		out = append(out, fmt.Sprintf("  %s %s x%d: %s", e.Type, e.Reason, e.Count, e.Message))
	}
	return out
}

// ExpectEvents fails unless every reason appears among the Rollout's events
// (events are delivered asynchronously, so it waits a little).
func (s *Story) ExpectEvents(reasons ...string) {
	s.t.Helper()
	s.Eventually(10*time.Second, "events "+strings.Join(reasons, ", "), func() (bool, string) {
		have := map[string]bool{}
		for _, r := range s.EventReasons() {
			have[r] = true
		}
		var missing []string
		for _, r := range reasons {
			if !have[r] {
				missing = append(missing, r)
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %v among %v", missing, s.EventReasons())
	})
}

func (s *Story) statusDump() string {
	if s.Rollout == nil {
		return "(no Rollout)"
	}
	ro := &sluicev1.Rollout{}
	if err := s.c.Client.Get(context.Background(), client.ObjectKeyFromObject(s.Rollout), ro); err != nil {
		if apierrors.IsNotFound(err) {
			return "(Rollout gone)"
		}
		return err.Error()
	}
	st := ro.Status
	out := fmt.Sprintf("  phase=%s weight=%d step=%d failedChecks=%d message=%q\n", st.Phase, st.CanaryWeight, st.CurrentStepIndex, st.FailedChecks, st.Message)
	for _, m := range st.Metrics {
		out += fmt.Sprintf("  metric %s=%s %s %s\n", m.Name, m.Value, m.Verdict, m.Message)
	}
	for _, c := range st.Conditions {
		out += fmt.Sprintf("  condition %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	route := &gwv1.HTTPRoute{}
	if err := s.c.Client.Get(context.Background(), client.ObjectKeyFromObject(s.Rollout), route); err == nil {
		for i, r := range route.Spec.Rules {
			var refs []string
			for _, b := range r.BackendRefs {
				refs = append(refs, fmt.Sprintf("%s=%d", b.Name, ptrOr(b.Weight, 1)))
			}
			out += fmt.Sprintf("  HTTPRoute rule %d: matches %d, backends %v\n", i, len(r.Matches), refs)
		}
	}
	if s.rec != nil {
		for _, p := range s.rec.points() {
			out += fmt.Sprintf("  %s %s weight=%d step=%d\n", p.At.Format("15:04:05.000"), p.Phase, p.Weight, p.Step)
		}
	}
	return out
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// ---- status timeline and measured split ----

type statusPoint struct {
	At     time.Time
	Phase  sluicev1.Phase
	Weight int32
	Step   int32
	Failed int32
}

// routePoint is the canary's weight in the generated route, as the API
// server held it at a time.
type routePoint struct {
	At     time.Time
	Canary int32
}

type statusRecorder struct {
	mu     sync.Mutex
	pts    []statusPoint
	routes []routePoint
}

// recordStatus polls the Rollout every 50ms and keeps each change of
// phase, weight, step or failed checks with the time it was seen; with
// route, it also keeps each change of the canary's weight in the route.
func recordStatus(ctx context.Context, c client.Client, key client.ObjectKey, route func() (int32, bool)) *statusRecorder {
	r := &statusRecorder{}
	go func() {
		for {
			ro := &sluicev1.Rollout{}
			if err := c.Get(ctx, key, ro); err == nil {
				p := statusPoint{At: time.Now(), Phase: ro.Status.Phase, Weight: ro.Status.CanaryWeight, Step: ro.Status.CurrentStepIndex, Failed: ro.Status.FailedChecks}
				r.mu.Lock()
				if n := len(r.pts); n == 0 || r.pts[n-1].Phase != p.Phase || r.pts[n-1].Weight != p.Weight || r.pts[n-1].Step != p.Step || r.pts[n-1].Failed != p.Failed {
					r.pts = append(r.pts, p)
				}
				r.mu.Unlock()
			}
			if route != nil {
				if w, ok := route(); ok {
					r.mu.Lock()
					if n := len(r.routes); n == 0 || r.routes[n-1].Canary != w {
						r.routes = append(r.routes, routePoint{At: time.Now(), Canary: w})
					}
					r.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return r
}

func (r *statusRecorder) points() []statusPoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]statusPoint(nil), r.pts...)
}

func (r *statusRecorder) routePoints() []routePoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]routePoint(nil), r.routes...)
}

// weightWindow is a span during which the Rollout reported one weight
// and, for a Gateway API route, the route held it.
type weightWindow struct {
	Weight   int32
	From, To time.Time
	// Reported is when the status first said Weight, and for how long;
	// RouteLag how much later the route was seen holding it (zero without
	// a route timeline).
	Reported    time.Time
	ReportedFor time.Duration
	RouteLag    time.Duration
	// NeverRouted: the route was never seen holding Weight while the
	// status reported it.
	NeverRouted bool
	// trail is what Measured cuts from the end.
	trail time.Duration
}

// WeightWindows returns the spans of constant non-zero weight while
// Progressing, since t. Where the story records the route (a Gateway API
// router), each span is cut to the part in which the route held the
// weight too: Sluice records a decision that moves traffic before it
// moves the route, so the status leads the route at both ends of a step.
func (s *Story) WeightWindows(since time.Time) []weightWindow {
	pts := s.rec.points()
	var out []weightWindow
	for i, p := range pts {
		if p.At.Before(since) || p.Phase != sluicev1.PhaseProgressing || p.Weight == 0 {
			continue
		}
		end := time.Now()
		if i+1 < len(pts) {
			end = pts[i+1].At
		}
		if n := len(out); n > 0 && out[n-1].Weight == p.Weight && out[n-1].To.Equal(p.At) {
			out[n-1].To = end
			continue
		}
		out = append(out, weightWindow{Weight: p.Weight, From: p.At, To: end, Reported: p.At, trail: trailReported})
	}
	routes := s.rec.routePoints()
	for i := range out {
		out[i].ReportedFor = out[i].To.Sub(out[i].From)
		if len(routes) > 0 {
			out[i] = routedPart(out[i], routes)
		}
	}
	return out
}

// routedPart cuts w to the part of it in which the route held w's weight:
// from the latest move of the route to that weight before w ends, to the
// route's next move. A window whose weight the route never held comes
// back empty (From == To).
func routedPart(w weightWindow, routes []routePoint) weightWindow {
	w.trail = trailRouted
	for j := len(routes) - 1; j >= 0; j-- {
		r := routes[j]
		if r.Canary != w.Weight || !r.At.Before(w.To) {
			continue
		}
		left := time.Now()
		if j+1 < len(routes) {
			left = routes[j+1].At
		}
		if !left.After(w.From) {
			break
		}
		if r.At.After(w.From) {
			w.RouteLag = r.At.Sub(w.From)
			w.From = r.At
		}
		if left.Before(w.To) {
			w.To = left
		}
		return w
	}
	w.To, w.NeverRouted = w.From, true
	return w
}

// settle is cut from the start of each weight window: Traefik applies a
// weight 0.1-0.35s after the route holds it.
const settle = 600 * time.Millisecond

// trailReported is cut from the end of a window known only from the
// status: on a loaded node the status was seen up to ~1s after Traefik
// applied the next weight (a config story measured 72% at weight 60
// before this cut). trailRouted is cut from a window the route's own
// moves bound: the gateway keeps the old weight until after the route
// moves, so only the two polls' jitter is left.
const (
	trailReported = time.Second
	trailRouted   = 200 * time.Millisecond
)

// Measured returns the part of a weight window the split is measured on.
func (w weightWindow) Measured() (from, to time.Time) {
	return w.From.Add(settle), w.To.Add(-w.trail)
}

// maxLate is how much later than settle a weight window's measured part may
// start when the gateway applied the weight late: on a node loaded by the
// stories beside it, Traefik was seen applying a weight 1-1.5s after the
// Rollout reported it, which left a third of a 4s step at the old weight.
const maxLate = 2 * time.Second

// settledSplit measures the share that version (by key) got over w's
// measured part; when that is more than tolerance points off the weight, it
// measures again from later starts (250ms apart, up to maxLate, keeping at
// least 40 answers) and returns the first that is within tolerance, with
// how late it starts. The weight must still hold at the end of the step:
// a split that never matches is returned from the settled start, late 0.
func (s *Story) settledSplit(w weightWindow, version string, key func(cluster.Hit) string, tolerance float64) (cluster.Split, time.Duration) {
	from, to := w.Measured()
	first := s.Load.SplitBy(from, to, key)
	if math.Abs(first.Share(version)-float64(w.Weight)) <= tolerance {
		return first, 0
	}
	for late := 250 * time.Millisecond; late <= maxLate; late += 250 * time.Millisecond {
		sp := s.Load.SplitBy(from.Add(late), to, key)
		if sp.Total < 40 {
			break
		}
		if math.Abs(sp.Share(version)-float64(w.Weight)) <= tolerance {
			return sp, late
		}
	}
	return first, 0
}

// CheckSplit measures, for each weight the Rollout reported since t, the
// share of answers the canary version gave, logs it against the weight and
// fails when it is off by more than tolerance percentage points (see
// settledSplit for a gateway that applies a weight late). It returns the
// windows measured.
func (s *Story) CheckSplit(since time.Time, canary string, tolerance float64) []weightWindow {
	s.t.Helper()
	wins := s.WeightWindows(since)
	if len(wins) == 0 {
		s.Fatalf("no weight was reported while Progressing:\n%s", s.statusDump())
	}
	for _, w := range wins {
		if w.NeverRouted && w.ReportedFor > time.Second {
			s.Fatalf("the status reported weight %d from %s, but the route was never seen holding it:\n%s", w.Weight, w.Reported.Format("15:04:05.000"), s.statusDump())
		}
		if w.RouteLag > 0 {
			s.Figure(fmt.Sprintf("weight %d%% held by the route later than reported by", w.Weight), w.RouteLag.Round(time.Millisecond))
		}
		from, to := w.Measured()
		if !to.After(from) {
			s.Logf("weight %d held %s: too short to measure", w.Weight, w.To.Sub(w.From).Round(time.Millisecond))
			continue
		}
		split, late := s.settledSplit(w, canary, byVersion, tolerance)
		got := split.Share(canary)
		s.Figure(fmt.Sprintf("split at weight %d%%", w.Weight), fmt.Sprintf("canary %s answered %.1f%% (%s over %s)", canary, got, split, to.Sub(from.Add(late)).Round(time.Millisecond)))
		if late > 0 {
			s.Figure(fmt.Sprintf("weight %d%% applied by the gateway later than the settle time by", w.Weight), late)
		}
		if split.Total < 20 {
			s.Fatalf("weight %d: only %d answers measured", w.Weight, split.Total)
		}
		if math.Abs(got-float64(w.Weight)) > tolerance {
			s.Fatalf("weight %d: the canary answered %.1f%% of the requests (%s), more than %.0f points off\n%s", w.Weight, got, split, tolerance, s.splitTimeline(w, canary, byVersion))
		}
	}
	return wins
}

// splitTimeline shows, for a split that did not match its weight, when
// the status and the route moved around w and the share version got in
// each half second from w's report to a second after it ended.
func (s *Story) splitTimeline(w weightWindow, version string, key func(cluster.Hit) string) string {
	from, to := w.Reported, w.To.Add(time.Second)
	at := func(t time.Time) string { return "+" + t.Sub(w.Reported).Round(time.Millisecond).String() }
	var b strings.Builder
	fmt.Fprintf(&b, "  weight %d reported at %s for %s; measured %s..%s\n", w.Weight, w.Reported.Format("15:04:05.000"), w.ReportedFor.Round(time.Millisecond), at(w.From.Add(settle)), at(w.To.Add(-w.trail)))
	for _, p := range s.rec.points() {
		if !p.At.Before(from.Add(-5*time.Second)) && p.At.Before(to) {
			fmt.Fprintf(&b, "  %9s status %s weight %d\n", at(p.At), p.Phase, p.Weight)
		}
	}
	for _, r := range s.rec.routePoints() {
		if !r.At.Before(from.Add(-5*time.Second)) && r.At.Before(to) {
			fmt.Fprintf(&b, "  %9s route canary %d%%\n", at(r.At), r.Canary)
		}
	}
	for t := from; t.Before(to); t = t.Add(500 * time.Millisecond) {
		sp := s.Load.SplitBy(t, t.Add(500*time.Millisecond), key)
		fmt.Fprintf(&b, "  %9s %s %.0f%% of %d answers\n", at(t), version, sp.Share(version), sp.Total)
	}
	return b.String()
}

// byVersion keys an answer by the version that gave it.
func byVersion(h cluster.Hit) string { return h.Version }

// ExpectNoFailedRequests fails the story when any request since t got a
// 5xx or no answer: Sluice must never be the cause of an outage of a good
// version. It logs the answers per version and per phase first.
func (s *Story) ExpectNoFailedRequests(since time.Time) {
	s.t.Helper()
	s.LogErrorsByPhase(since)
	sp := s.Load.SplitBetween(since, time.Now())
	s.Figure("answers per version", sp.String())
	if sp.Total == 0 {
		s.Fatalf("no request was answered since %s", since.Format(time.RFC3339Nano))
	}
	if sp.Errors > 0 {
		var when []string
		for _, h := range s.Load.Hits(since, time.Now()) {
			if (h.Code == 0 || h.Code >= 500) && len(when) < 10 {
				when = append(when, fmt.Sprintf("at %s code %d %q%s", h.At.Sub(s.begin).Round(time.Millisecond), h.Code, h.Message, h.Err))
			}
		}
		s.Fatalf("%d of %d requests failed (%s); first: %s", sp.Errors, sp.Total, sp, strings.Join(when, "; "))
	}
}

// LogErrorsByPhase logs, for each phase the Rollout went through since t,
// how many requests got a 5xx or no answer.
func (s *Story) LogErrorsByPhase(since time.Time) {
	s.t.Helper()
	pts := s.rec.points()
	type agg struct{ total, errs int }
	byPhase := map[sluicev1.Phase]*agg{}
	var order []sluicev1.Phase
	for i, p := range pts {
		end := time.Now()
		if i+1 < len(pts) {
			end = pts[i+1].At
		}
		if end.Before(since) {
			continue
		}
		from := p.At
		if from.Before(since) {
			from = since
		}
		sp := s.Load.SplitBetween(from, end)
		a := byPhase[p.Phase]
		if a == nil {
			a = &agg{}
			byPhase[p.Phase] = a
			order = append(order, p.Phase)
		}
		a.total += sp.Total
		a.errs += sp.Errors
	}
	var parts []string
	for _, ph := range order {
		parts = append(parts, fmt.Sprintf("%s %d/%d", ph, byPhase[ph].errs, byPhase[ph].total))
	}
	s.Figure("failed requests per phase (errors/answers)", strings.Join(parts, ", "))
}

// WaitServing waits until every answer of the last second came from
// version (the route is programmed and the backends answer).
func (s *Story) WaitServing(version string) {
	s.t.Helper()
	s.Eventually(30*time.Second, version+" answering through the Gateway", func() (bool, string) {
		sp := s.Load.SplitBetween(time.Now().Add(-time.Second), time.Now())
		return sp.Total >= 10 && sp.Share(version) == 100, sp.String()
	})
}

// ExpectForwardWeights fails the story unless the route's weights seen
// (got, as "primary/canary") went through want in order, the promotion's
// brief 0/100 aside.
func (s *Story) ExpectForwardWeights(got []string, want string) {
	s.t.Helper()
	s.Figure("route weights (primary/canary) seen", strings.Join(got, " -> "))
	var forward []string
	for _, w := range got {
		if w != "0/100" {
			forward = append(forward, w)
		}
	}
	if strings.Join(forward, " ") != want {
		s.Fatalf("route weights %v, want %s", got, want)
	}
}

// RecordRouteWeights polls the generated HTTPRoute every 50ms and keeps
// each distinct "primary/canary" weight pair of its rules, in order.
func (s *Story) RecordRouteWeights() func() []string {
	var mu sync.Mutex
	var seen []string
	go func() {
		for s.ctx.Err() == nil {
			if p, c, err := s.routeWeights(); err == nil {
				w := fmt.Sprintf("%d/%d", p, c)
				mu.Lock()
				if len(seen) == 0 || seen[len(seen)-1] != w {
					seen = append(seen, w)
				}
				mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// routeWeights sums the weights of the primary's and the canary's
// backends in the Rollout's generated route.
func (s *Story) routeWeights() (primary, canary int32, err error) {
	refs, err := s.routeBackends()
	if err != nil {
		return 0, 0, err
	}
	for _, b := range refs {
		switch {
		case strings.HasSuffix(string(b.Name), "-primary"):
			primary += ptrOr(b.Weight, 1)
		case strings.HasSuffix(string(b.Name), "-canary"):
			canary += ptrOr(b.Weight, 1)
		}
	}
	return primary, canary, nil
}

// routeCanaryWeight is the canary's share, in percent, of the weights in
// the Rollout's generated route; false when the route cannot be read or
// has no weight.
func (s *Story) routeCanaryWeight() (int32, bool) {
	p, c, err := s.routeWeights()
	if err != nil || p+c == 0 {
		return 0, false
	}
	return c * 100 / (p + c), true
}

// routeBackends reads the backends of the Rollout's generated route, an
// HTTPRoute or a GRPCRoute.
func (s *Story) routeBackends() ([]gwv1.BackendRef, error) {
	var refs []gwv1.BackendRef
	key := client.ObjectKeyFromObject(s.Rollout)
	if r := s.Rollout.Spec.Routing; r != nil && r.GatewayAPI != nil && r.GatewayAPI.RouteKind == "GRPCRoute" {
		route := &gwv1.GRPCRoute{}
		if err := s.c.Client.Get(s.ctx, key, route); err != nil {
			return nil, err
		}
		for _, r := range route.Spec.Rules {
			for _, b := range r.BackendRefs {
				refs = append(refs, b.BackendRef)
			}
		}
		return refs, nil
	}
	route := &gwv1.HTTPRoute{}
	if err := s.c.Client.Get(s.ctx, key, route); err != nil {
		return nil, err
	}
	for _, r := range route.Spec.Rules {
		for _, b := range r.BackendRefs {
			refs = append(refs, b.BackendRef)
		}
	}
	return refs, nil
}

// CanarySteps is a canary strategy of setWeight steps.
func CanarySteps(weights ...int32) sluicev1.Strategy {
	steps := make([]sluicev1.CanaryStep, len(weights))
	for i, w := range weights {
		steps[i] = sluicev1.CanaryStep{SetWeight: ptr.To(w)}
	}
	return sluicev1.Strategy{Canary: &sluicev1.CanaryStrategy{Steps: steps}}
}

// SuccessRate is the built-in success-rate check with a minimum, every 10s.
func SuccessRate(min float64) sluicev1.MetricCheck {
	return sluicev1.MetricCheck{
		Name:           sluicev1.MetricRequestSuccessRate,
		ThresholdRange: &sluicev1.ThresholdRange{Min: ptr.To(min)},
		Interval:       &metav1.Duration{Duration: 10 * time.Second},
		// The first check may come before Traefik has sent the canary a
		// request: hold instead of counting a failure.
		OnNoData: sluicev1.NoDataHold,
	}
}

// Ctx is the story's context (cancelled when the test ends).
func (s *Story) Ctx() context.Context { return s.ctx }

// Cluster is the cluster the story runs on.
func (s *Story) Cluster() *cluster.Cluster { return s.c }

// EventCount is how many times the Rollout's events of reason were
// recorded (an aggregated event counts its repeats).
func (s *Story) EventCount(reason string) int {
	n := 0
	for _, e := range s.events() {
		if e.Reason == reason {
			n += int(max(e.Count, 1))
		}
	}
	return n
}

// FirstSeen is when the recorded status first met cond (zero if never).
func (s *Story) FirstSeen(cond func(phase sluicev1.Phase, weight, failedChecks int32) bool) time.Time {
	for _, p := range s.rec.points() {
		if cond(p.Phase, p.Weight, p.Failed) {
			return p.At
		}
	}
	return time.Time{}
}
