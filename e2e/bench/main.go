// Command bench measures the shipped manager binary at fleet scale
// (`make bench-scale`). It starts the benchmark control plane (a real
// kube-apiserver with an audit log, etcd, kube-controller-manager,
// kube-scheduler and kwok; see e2e/cluster/bench.go), runs the manager as its
// own process with --kubeconfig and its default flags, and drives N Rollouts
// at once through create → Initialized and an image change → Succeeded,
// several runs per N. It prints one table.
//
// Requests are counted from the API server's audit log, where the manager is
// its own user; CPU and peak RSS come from /proc. Each (strategy, N) gets a
// fresh control plane and manager, so that one row's objects do not weigh on
// the next.
//
//	go run ./e2e/bench -n 1,100,1000 -runs 3
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
	"github.com/sluice-dev/sluice/internal/freeport"
)

// imageChange is the release: a strategic merge patch giving a
// Deployment's container the new image.
const imageChange = `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`

// managerUser is the manager's user in the audit log.
const managerUser = "sluice-bench-manager"

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
  users: ["` + managerUser + `"]
- level: None
`

// auditPolicyStatus is auditPolicy with the bodies of the manager's status
// writes, for -status-messages.
const auditPolicyStatus = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Request
  users: ["` + managerUser + `"]
  resources: [{group: "sluice.dev", resources: ["rollouts/status"]}]
- level: Metadata
  users: ["` + managerUser + `"]
- level: None
`

func main() {
	var (
		ns         = flag.String("n", "1,100,1000", "comma-separated fleet sizes")
		runs       = flag.Int("runs", 3, "runs per fleet size (the table gives median, min and max)")
		strategies = flag.String("strategies", "bluegreen,canary", "comma-separated: bluegreen (3 iterations), canary (3 steps), and kubernetes: a blue/green release's Deployment and Service writes made by the bench at Sluice's pace with no manager running, the least any controller could take on this control plane")
		interval   = flag.Duration("interval", 10*time.Second, "analysis interval of each iteration or step")
		managerBin = flag.String("manager", "", "manager binary (default: the harness builds ./cmd/manager)")
		idleWindow = flag.Duration("idle-window", 60*time.Second, "how long the fleet is watched idle after its last run, for requests per idle Rollout")
		idleWave   = flag.Int("idle-wave", 1000, "the idle fleet is created in waves of this many Rollouts, each initialized before the next (a control plane on two cores falls behind when 10,000 Rollouts, their Deployments and pods all come at once)")
		idle       = flag.Int("idle", 0, "also measure N idle Rollouts (RSS and requests), then the RSS added by N unrelated Deployments, ConfigMaps and 4 KiB Secrets (0: skip)")
		unrelated  = flag.Int("unrelated", 0, "how many unrelated Deployments, ConfigMaps and Secrets -idle adds (0: as many as idle Rollouts)")
		keep       = flag.Bool("keep", false, "keep the run directories (logs, audit logs)")
		extra      = flag.String("manager-args", "", "more manager flags, space-separated (the table is of the defaults only without them)")
		statusMsgs = flag.Bool("status-messages", false, "log the bodies of the manager's status writes in the audit log and print a release's status writes by the message they wrote (the API server does more work: its CPU column is not comparable)")
		profile    = flag.String("profile", "", "directory for the manager's CPU profile of each row's last release (10 s parts from the change to the last Succeeded: give pprof them all) and its allocations, and its live heap with the idle fleet, and the kube-apiserver's CPU profile over the same release (pprof files; --profiling-address is turned on)")
	)
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var sizes []int
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fail(fmt.Errorf("bad -n %q", s))
		}
		sizes = append(sizes, n)
	}
	b := &bench{runs: *runs, interval: *interval, managerBin: *managerBin, idleWindow: *idleWindow, idleWave: max(*idleWave, 1), unrelated: *unrelated, keep: *keep, extraArgs: strings.Fields(*extra), profileDir: *profile, statusMessages: *statusMsgs}
	var rows []row
	for _, strat := range strings.Split(*strategies, ",") {
		for _, n := range sizes {
			r, err := b.row(ctx, strings.TrimSpace(strat), n)
			if err != nil {
				fail(err)
			}
			rows = append(rows, r)
			printTable(os.Stderr, rows) // progress: the table so far
		}
	}
	var idleRes *idleResult
	if *idle > 0 {
		res, err := b.idleFleet(ctx, *idle)
		if err != nil {
			fail(err)
		}
		idleRes = &res
	}
	fmt.Println()
	printTable(os.Stdout, rows)
	if idleRes != nil {
		idleRes.print(os.Stdout)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

type bench struct {
	runs       int
	interval   time.Duration
	managerBin string
	idleWindow time.Duration
	idleWave   int
	unrelated  int
	keep       bool
	extraArgs  []string
	profileDir string
	// statusMessages: see -status-messages.
	statusMessages bool
}

// env is one control plane with one manager.
type env struct {
	pprof string // the manager's pprof address, with -profile
	c     *cluster.Cluster
	// mgr is nil for floorStrategy, which runs no manager but sends its
	// requests as the manager's user (managerKubeConfig).
	mgr               *cluster.Proc
	managerKubeConfig string
	audit             string
	metrics           string
	apiPid            int
	stopOnce          sync.Once
}

func (b *bench) start(ctx context.Context, withManager bool) (*env, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{audit: filepath.Join(dir, "audit.log")}
	policy := filepath.Join(dir, "audit-policy.yaml")
	text := auditPolicy
	if b.statusMessages {
		text = auditPolicyStatus
	}
	if err := os.WriteFile(policy, []byte(text), 0o644); err != nil {
		return nil, err
	}
	e.c, err = cluster.StartControlPlane(ctx, cluster.ControlPlaneOptions{Dir: dir, APIServerFlags: map[string]string{
		"audit-policy-file": policy,
		"audit-log-path":    e.audit,
		"audit-log-format":  "json",
		// In megabytes. 0 is not "never": the API server's log writer
		// then rotates at 100 MB, which three runs of 1,000 pass, and the
		// counts of the third run missed most of its requests.
		"audit-log-maxsize": "1000000",
	}})
	if err != nil {
		return nil, err
	}
	e.apiPid = childPid("kube-apiserver")
	kc, err := e.c.UserKubeConfig(managerUser, "system:masters")
	if err != nil {
		e.stop(b.keep)
		return nil, err
	}
	e.managerKubeConfig = kc
	if !withManager {
		return e, nil
	}
	metricsAddr, healthAddr := freeAddr(), freeAddr()
	e.metrics = "http://" + metricsAddr + "/metrics"
	bin := b.managerBin
	if bin == "" {
		bin = e.c.ManagerBinary()
	}
	args := b.extraArgs
	if b.profileDir != "" {
		e.pprof = freeAddr()
		args = append(slices.Clone(args), "--profiling-address="+e.pprof)
	}
	// The manager as it ships, with the flags an out-of-cluster user must
	// give: no client-side limit, leader election on, info logs.
	e.mgr, err = e.c.StartProcess("sluice-manager", bin, append([]string{
		"--kubeconfig=" + kc,
		"--leader-election-namespace=kube-system",
		"--metrics-bind-address=" + metricsAddr,
		"--health-probe-bind-address=" + healthAddr,
	}, args...)...)
	if err != nil {
		e.stop(b.keep)
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for !httpOK("http://" + healthAddr + "/readyz") {
		if e.mgr.Exited() || time.Now().After(deadline) {
			e.stop(b.keep)
			return nil, fmt.Errorf("the manager did not become ready:\n%s", e.mgr.Tail(3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Ready is not leading: wait for the Lease, so that the first run does
	// not measure the election.
	for {
		out, _ := os.ReadFile(e.mgr.Log)
		if strings.Contains(strings.ToLower(string(out)), "successfully acquired lease") {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			e.stop(b.keep)
			return nil, fmt.Errorf("the manager did not take the Lease:\n%s", e.mgr.Tail(3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return e, nil
}

func (e *env) stop(keep bool) {
	e.stopOnce.Do(func() {
		e.c.Stop()
		if !keep {
			_ = os.RemoveAll(e.c.Dir)
		} else {
			fmt.Fprintln(os.Stderr, "kept", e.c.Dir)
		}
	})
}

// run is one measured release of n Rollouts.
type run struct {
	initialized, progressing, firstShift, succeeded time.Duration
	// firstShiftOne is the median over Rollouts of their own change →
	// first traffic shift.
	reads, writes     float64 // per release
	eventsWritten     int
	eventsRecorded    int
	managerCPU        time.Duration
	apiServerCPU      time.Duration
	peakRSS           int64 // bytes
	requestsIdleRoMin float64
}

type row struct {
	strategy string
	n        int
	runs     []run
}

func (b *bench) row(ctx context.Context, strategy string, n int) (row, error) {
	r := row{strategy: strategy, n: n}
	floor := strategy == floorStrategy
	e, err := b.start(ctx, !floor)
	if err != nil {
		return r, err
	}
	defer e.stop(b.keep)
	for i := range b.runs {
		fmt.Fprintf(os.Stderr, "%s N=%d run %d/%d\n", strategy, n, i+1, b.runs)
		var res run
		if floor {
			res, err = b.floorRelease(ctx, e, n, i, i == b.runs-1)
		} else {
			res, err = b.release(ctx, e, strategy, n, i, i == b.runs-1)
		}
		if err != nil {
			return r, fmt.Errorf("%s N=%d run %d: %w", strategy, n, i+1, err)
		}
		r.runs = append(r.runs, res)
		if floor {
			fmt.Fprintf(os.Stderr, "  run %d: initialized %.1fs, last scaled up %.2fs, last shift %.2fs, done %.1fs, %.1f reads and %.1f writes a release, kube-apiserver %.1f CPU s\n",
				i+1, res.initialized.Seconds(), res.progressing.Seconds(), res.firstShift.Seconds(), res.succeeded.Seconds(), res.reads, res.writes, res.apiServerCPU.Seconds())
			continue
		}
		fmt.Fprintf(os.Stderr, "  run %d: initialized %.1fs, progressing %.2fs, succeeded %.1fs, %.1f reads and %.1f writes a release, %.1f ms CPU a release, peak RSS %.0f MiB\n",
			i+1, res.initialized.Seconds(), res.progressing.Seconds(), res.succeeded.Seconds(), res.reads, res.writes,
			float64(res.managerCPU.Milliseconds())/float64(n), float64(res.peakRSS)/(1<<20))
	}
	return r, nil
}

func (b *bench) objects(strategy, ns string, i int) (*appsv1.Deployment, *sluicev1.Rollout) {
	name := fmt.Sprintf("app-%d", i)
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}},
		},
	}
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{Kind: "Deployment", Name: name},
			Service:   sluicev1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080))},
			Analysis:  &sluicev1.Analysis{Interval: &metav1.Duration{Duration: b.interval}, Threshold: 1},
		},
	}
	if strategy == "canary" {
		ro.Spec.Routing = &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{
			ParentRefs: []sluicev1.ParentReference{{Name: "public", Namespace: ns}}}}
		ro.Spec.Strategy.Canary = &sluicev1.CanaryStrategy{Steps: []sluicev1.CanaryStep{
			{SetWeight: ptr.To[int32](10)}, {SetWeight: ptr.To[int32](30)}, {SetWeight: ptr.To[int32](60)}}}
	} else {
		ro.Spec.Strategy.BlueGreen = &sluicev1.BlueGreenStrategy{Iterations: 3}
	}
	return d, ro
}

// release creates n Rollouts in a namespace of their own, waits until all
// are Initialized, changes every target's image and waits until all are
// Succeeded. With idle set, it then watches the whole fleet idle.
func (b *bench) release(ctx context.Context, e *env, strategy string, n, runIdx int, idle bool) (run, error) {
	var res run
	c := e.c.Client
	ns := fmt.Sprintf("bench-%d", runIdx)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return res, err
	}
	w := newWatcher(ctx, e, ns)
	defer w.stop()
	profiling := b.profileDir != "" && idle // the row's last run
	rss := sampleRSS(e.mgr.Pid())
	defer rss.stop()

	t0 := time.Now()
	if err := parallel(n, func(i int) error {
		d, ro := b.objects(strategy, ns, i)
		if err := c.Create(ctx, d); err != nil {
			return err
		}
		return c.Create(ctx, ro)
	}); err != nil {
		return res, err
	}
	if err := w.waitAll(ctx, n, sluicev1.PhaseInitialized, 10*time.Minute); err != nil {
		return res, err
	}
	res.initialized = time.Since(t0)
	// Settle: pods of the initialisation may still be going away, and the
	// events of the initialisation may still be queued: counted after the
	// change, they would read as a release's.
	time.Sleep(2 * time.Second)
	before, _ := waitEventsWritten(e.metrics)
	// After the scrape: its work is not the release's.
	cpu0, api0 := procCPU(e.mgr.Pid()), procCPU(e.apiPid)
	rec0 := before.sum("sluice_events_total")
	q0 := before.mean("workqueue_queue_duration_seconds", `name="rollout"`)
	r0 := before.mean("controller_runtime_reconcile_time_seconds", `controller="rollout"`)
	// Bytes allocated: the work of a release, far steadier from run to
	// run on a shared machine than its CPU seconds.
	alloc0 := before.sum("go_memstats_alloc_bytes_total")
	tChange := time.Now()
	// The CPU profiles cover the whole release, promotion and drain
	// included.
	stopProfiles := func() error { return nil }
	if profiling {
		stopManager := profileParts(http.DefaultClient, "http://"+e.pprof, b.profileDir, fmt.Sprintf("cpu-%s-%d", strategy, n))
		stopAPIServer := b.profileAPIServer(e, strategy, n)
		stopProfiles = func() error { return errors.Join(stopManager(), stopAPIServer()) }
	}
	if err := parallel(n, func(i int) error {
		patch := []byte(imageChange)
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%d", i), Namespace: ns}}
		return c.Patch(ctx, d, client.RawPatch(types.StrategicMergePatchType, patch))
	}); err != nil {
		return res, err
	}
	if err := w.waitAll(ctx, n, sluicev1.PhaseSucceeded, 15*time.Minute); err != nil {
		return res, err
	}
	tDone := time.Now()
	res.succeeded = tDone.Sub(tChange)
	// Before anything else asks the manager for work (a profile, a scrape).
	res.managerCPU = procCPU(e.mgr.Pid()) - cpu0
	res.apiServerCPU = procCPU(e.apiPid) - api0
	if err := stopProfiles(); err != nil {
		return res, err
	}
	if profiling {
		if err := fetch(http.DefaultClient, fmt.Sprintf("http://%s/debug/pprof/allocs", e.pprof),
			filepath.Join(b.profileDir, fmt.Sprintf("allocs-%s-%d.pprof", strategy, n))); err != nil {
			return res, err
		}
	}
	res.progressing = w.lastSince(tChange, func(s seen) time.Time { return s.progressing })
	res.firstShift = w.lastSince(tChange, func(s seen) time.Time { return s.shifted })
	// Requests of the release: from the first change until every Rollout
	// is Succeeded, plus a second for what was in flight. Events are sent
	// in the background: they are counted until the manager's queue of
	// them is empty, and for 5 s at least.
	time.Sleep(5 * time.Second)
	after, tEvents := waitEventsWritten(e.metrics)
	counts, err := countAudit(e.audit, tChange, tDone.Add(time.Second))
	if err != nil {
		return res, err
	}
	late, err := countAudit(e.audit, tChange, tEvents.Add(time.Second))
	if err != nil {
		return res, err
	}
	// The Lease renewals (one every 2 s, whatever the fleet) are the
	// manager's, not a release's.
	res.reads = float64(counts.reads-counts.leaseReads) / float64(n)
	res.writes = float64(counts.writes-(counts.lease-counts.leaseReads)) / float64(n)
	res.eventsWritten = late.events
	res.eventsRecorded = int(after.sum("sluice_events_total") - rec0)
	res.peakRSS = rss.stop()
	q1 := after.mean("workqueue_queue_duration_seconds", `name="rollout"`)
	r1 := after.mean("controller_runtime_reconcile_time_seconds", `controller="rollout"`)
	alloc1 := after.sum("go_memstats_alloc_bytes_total")
	fmt.Fprintf(os.Stderr, "  release: %d reconciles, %.0f ms mean wait in the work queue, %.0f ms mean reconcile, %d collections (next at %.0f MiB), %.0f KiB allocated a release\n",
		int(r1.count-r0.count), q1.meanSince(q0)*1000, r1.meanSince(r0)*1000, collectionsBetween(before, after), after.sum("go_memstats_next_gc_bytes")/(1<<20),
		(alloc1-alloc0)/float64(n)/(1<<10))
	fmt.Fprintf(os.Stderr, "  a /metrics scrape: %s\n", scrapeCost(e.mgr.Pid(), e.metrics))
	if failed := after.sum("sluice_events_failed_total"); failed > 0 {
		fmt.Fprintf(os.Stderr, "  events given up on by the manager (sluice_events_failed_total): %.0f\n", failed)
	}
	fmt.Fprintf(os.Stderr, "  writes a release: %s\n", perRelease(counts.written, n))
	if len(counts.statusSaid) > 0 {
		fmt.Fprintf(os.Stderr, "  status writes a release, by what they said:\n    %s\n", strings.Join(perReleaseParts(counts.statusSaid, n), "\n    "))
	}

	if idle && b.idleWindow > 0 {
		// Every Rollout of every run is idle now.
		time.Sleep(2 * time.Second)
		t := time.Now()
		time.Sleep(b.idleWindow)
		idleCounts, err := countAudit(e.audit, t, time.Now())
		if err != nil {
			return res, err
		}
		total := n * (runIdx + 1)
		// The Lease renewals are the manager's, not a Rollout's.
		res.requestsIdleRoMin = float64(idleCounts.reads+idleCounts.writes-idleCounts.lease) / float64(total) / b.idleWindow.Minutes()
		fmt.Fprintf(os.Stderr, "idle: %d Rollouts, %d requests in %s (%d of them the Lease)\n",
			total, idleCounts.reads+idleCounts.writes, b.idleWindow, idleCounts.lease)
	}
	return res, nil
}

// seen records when the watcher first saw each Rollout in a state.
type seen struct {
	progressing, shifted, initialized, succeeded time.Time
}

type watcher struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	byName map[string]*seen
	last   map[string]*sluicev1.Rollout
	cond   chan struct{}
}

// newWatcher follows the namespace's Rollouts with one watch (no polling).
func newWatcher(ctx context.Context, e *env, ns string) *watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{cancel: cancel, byName: map[string]*seen{}, last: map[string]*sluicev1.Rollout{}, cond: make(chan struct{}, 1)}
	watchNamespace(ctx, e, &sluicev1.RolloutList{}, ns, func(o runtime.Object) {
		if ro, ok := o.(*sluicev1.Rollout); ok {
			w.observe(ro)
		}
	})
	return w
}

// watchNamespace calls seen with each object of a kind in ns, as one watch
// reports them, until ctx ends. Without a resourceVersion a watch begins
// with every object as it is: one that ended and starts again loses
// nothing.
func watchNamespace(ctx context.Context, e *env, list client.ObjectList, ns string, seen func(runtime.Object)) {
	wc, err := clientWithWatch(e)
	if err != nil {
		fail(err)
	}
	go func() {
		for ctx.Err() == nil {
			wi, err := wc.Watch(ctx, list, client.InNamespace(ns))
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				seen(ev.Object)
			}
		}
	}()
}

func (w *watcher) observe(ro *sluicev1.Rollout) {
	now := time.Now()
	w.mu.Lock()
	w.last[ro.Name] = ro
	s := w.byName[ro.Name]
	if s == nil {
		s = &seen{}
		w.byName[ro.Name] = s
	}
	switch ro.Status.Phase {
	case sluicev1.PhaseInitialized:
		s.initialized = now
	case sluicev1.PhaseProgressing:
		if s.progressing.IsZero() {
			s.progressing = now
		}
		// The first traffic shift, the run on a ready canary: a canary
		// takes its first weight (recorded just before the route is
		// changed); a blue/green canary, which takes no traffic until the
		// promotion, starts its first iteration's hold, ready. (Until
		// 2026-12-05 a blue/green run counted as shifted as soon as it
		// entered Progressing, before its canary was even scaled up.)
		if s.shifted.IsZero() && (ro.Status.CanaryWeight > 0 || ro.Status.StepStartedAt != nil) {
			s.shifted = now
		}
	case sluicev1.PhaseSucceeded:
		s.succeeded = now
	}
	w.mu.Unlock()
	select {
	case w.cond <- struct{}{}:
	default:
	}
}

func (w *watcher) count(phase sluicev1.Phase, since time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.byName {
		var t time.Time
		switch phase {
		case sluicev1.PhaseInitialized:
			t = s.initialized
		case sluicev1.PhaseSucceeded:
			t = s.succeeded
		}
		if !t.IsZero() && t.After(since) {
			n++
		}
	}
	return n
}

func (w *watcher) waitAll(ctx context.Context, n int, phase sluicev1.Phase, timeout time.Duration) error {
	since := time.Now().Add(-time.Hour)
	if phase == sluicev1.PhaseSucceeded {
		since = time.Now()
	}
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		if got := w.count(phase, since); got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%d of %d Rollouts reached %s in %s; one that did not: %s", w.count(phase, since), n, phase, timeout, w.lagging(phase, since))
		case <-tick.C:
			fmt.Fprintf(os.Stderr, "  %d/%d %s\n", w.count(phase, since), n, phase)
		case <-w.cond:
		}
	}
}

// lagging describes a Rollout that has not reached phase: its phase and
// the message of its Ready condition.
func (w *watcher) lagging(phase sluicev1.Phase, since time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, ro := range w.last {
		s := w.byName[name]
		t := s.initialized
		if phase == sluicev1.PhaseSucceeded {
			t = s.succeeded
		}
		if t.IsZero() || !t.After(since) {
			msg := ""
			for _, c := range ro.Status.Conditions {
				msg += fmt.Sprintf(" %s=%s (%s)", c.Type, c.Status, c.Message)
			}
			return fmt.Sprintf("%s in %s:%s", name, ro.Status.Phase, msg)
		}
	}
	return "none seen"
}

// lastSince is the latest of the times pick returns, counted from t0.
func (w *watcher) lastSince(t0 time.Time, pick func(seen) time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, s := range w.byName {
		if t := pick(*s); t.After(last) {
			last = t
		}
	}
	if last.Before(t0) {
		return 0
	}
	return last.Sub(t0)
}

func (w *watcher) stop() { w.cancel() }

func clientWithWatch(e *env) (client.WithWatch, error) {
	return client.NewWithWatch(e.c.Config, client.Options{Scheme: e.c.Client.Scheme()})
}

// parallel runs f for 0..n-1 on 32 workers and returns the first error.
func parallel(n int, f func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range min(32, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

type auditCounts struct {
	reads, writes, events int
	// lease counts the Lease requests (leaseReads of them reads).
	lease, leaseReads int
	// written counts the writes other than the Lease's by what they were
	// ("rollouts/status patch", with " 409" when refused), to say where a
	// release's writes go.
	written map[string]int
	// statusSaid counts the status writes by what they said (phase and
	// message, revisions and numbers blanked), with -status-messages.
	statusSaid map[string]int
}

// countAudit counts the manager's requests received in [from, to).
func countAudit(path string, from, to time.Time) (auditCounts, error) {
	c := auditCounts{written: map[string]int{}, statusSaid: map[string]int{}}
	// A rotated log (audit-<time>.log beside it) would be counted in part.
	ext := filepath.Ext(path)
	if rotated, _ := filepath.Glob(strings.TrimSuffix(path, ext) + "-*" + ext); len(rotated) > 0 {
		return c, fmt.Errorf("the audit log was rotated (%s): its counts would miss requests", strings.Join(rotated, ", "))
	}
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct {
			Verb string `json:"verb"`
			User struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
			ResponseStatus struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
			Received      time.Time `json:"requestReceivedTimestamp"`
			RequestObject *struct {
				Status struct {
					Phase   string  `json:"phase"`
					Message *string `json:"message"`
				} `json:"status"`
			} `json:"requestObject"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue
		}
		if ev.User.Username != managerUser || ev.Received.Before(from) || !ev.Received.Before(to) {
			continue
		}
		switch ev.Verb {
		case "get", "list", "watch":
			c.reads++
		default:
			c.writes++
			if ev.ObjectRef.Resource != "leases" {
				what := ev.ObjectRef.Resource
				if ev.ObjectRef.Subresource != "" {
					what += "/" + ev.ObjectRef.Subresource
				}
				what += " " + ev.Verb
				if ev.ResponseStatus.Code >= 300 {
					what += fmt.Sprintf(" %d", ev.ResponseStatus.Code)
				}
				c.written[what]++
			}
			if o := ev.RequestObject; o != nil && ev.ObjectRef.Subresource == "status" {
				said := "(no message)"
				if o.Status.Message != nil {
					said = blankFigures.ReplaceAllString(*o.Status.Message, "N")
				}
				if o.Status.Phase != "" {
					said = o.Status.Phase + ": " + said
				}
				c.statusSaid[said]++
			}
		}
		if ev.ObjectRef.Resource == "events" && ev.Verb != "get" && ev.Verb != "list" && ev.Verb != "watch" {
			c.events++
		}
		if ev.ObjectRef.Resource == "leases" {
			c.lease++
			if ev.Verb == "get" {
				c.leaseReads++
			}
		}
	}
	return c, sc.Err()
}

// blankFigures matches what differs between releases in a status message:
// revisions (10 hex digits) and numbers.
var blankFigures = regexp.MustCompile(`\b[0-9a-f]{10}\b|\d+(\.\d+)?`)

// perRelease says what a release wrote, most first ("rollouts/status patch
// 9.0, events create 5.0"), from the counts of n releases.
func perRelease(written map[string]int, n int) string {
	return strings.Join(perReleaseParts(written, n), ", ")
}

// perReleaseParts is perRelease's parts, most first.
func perReleaseParts(written map[string]int, n int) []string {
	kinds := make([]string, 0, len(written))
	for k := range written {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if written[kinds[i]] != written[kinds[j]] {
			return written[kinds[i]] > written[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %.1f", k, float64(written[k])/float64(n))
	}
	return parts
}

// procCPU is a process's user and system CPU time.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces), 1-based from
	// the state: utime is field 14, stime 15 of the whole line.
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(rest) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(rest[11], 10, 64)
	st, _ := strconv.ParseInt(rest[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// rssSampler keeps the highest resident set size seen.
type rssSampler struct {
	done chan struct{}
	peak chan int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{done: make(chan struct{}), peak: make(chan int64, 1)}
	go func() {
		var peak int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if v := rss(pid); v > peak {
				peak = v
			}
			select {
			case <-s.done:
				s.peak <- peak
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop returns the peak (once; later calls return 0).
func (s *rssSampler) stop() int64 {
	select {
	case <-s.done:
		return 0
	default:
	}
	close(s.done)
	return <-s.peak
}

func rss(pid int) int64 { return procStatusBytes(pid, "VmRSS") }

// procStatusBytes reads one of the kB figures of /proc/PID/status, in
// bytes (0 when the process or the figure is gone).
func procStatusBytes(pid int, name string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// mib is a byte count in MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

// resetPeakRSS starts a new peak for peakRSS: writing 5 to clear_refs
// resets the kernel's high-water mark of the process's RSS.
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the manager's peak RSS: %w", err)
	}
	return nil
}

// peakRSS is the process's highest RSS since resetPeakRSS (VmHWM): the
// kernel's own mark, which a sampler could miss between two samples.
func peakRSS(pid int) int64 { return procStatusBytes(pid, "VmHWM") }

// scrapeInterval is how often the chart's ServiceMonitor scrapes the
// manager (values.yaml, metrics.serviceMonitor.interval).
const scrapeInterval = 30 * time.Second

// scrapeFor scrapes the manager's /metrics every scrapeInterval for d, as
// Prometheus would, the first at once, and returns that first scrape.
func scrapeFor(ctx context.Context, url string, d time.Duration) (first exposition) {
	end := time.Now().Add(d)
	for i := 0; ; i++ {
		m := scrape(url)
		if i == 0 {
			first = m
		}
		next := time.Now().Add(scrapeInterval)
		if !next.Before(end) {
			_ = sleep(ctx, time.Until(end))
			return first
		}
		_ = sleep(ctx, time.Until(next))
	}
}

// childPid finds this process's child running the named binary (envtest
// starts kube-apiserver and etcd as children).
func childPid(name string) int {
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || filepath.Base(exe) != name {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if ppid, _ := strconv.Atoi(rest[1]); ppid == me {
			return pid
		}
	}
	return 0
}

// waitEventsWritten waits (up to 5 minutes) until the manager has no event
// queued to write, and returns the scrape that said so, and when.
func waitEventsWritten(metricsURL string) (exposition, time.Time) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		e := scrape(metricsURL)
		if e.sum("sluice_events_queued") == 0 || !time.Now().Before(deadline) {
			return e, time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrapeCost is the manager's CPU for one scrape of its metrics (a dozen
// series per Rollout it holds): the median of five rounds of ten scrapes
// each, since /proc counts CPU in 10 ms ticks.
func scrapeCost(pid int, metricsURL string) string {
	const scrapes = 10
	var ms []float64
	for range 5 {
		c0 := procCPU(pid)
		for range scrapes {
			scrape(metricsURL)
		}
		ms = append(ms, float64(procCPU(pid)-c0)/float64(time.Millisecond)/scrapes)
	}
	slices.Sort(ms)
	return fmt.Sprintf("%.0f ms of manager CPU (median of 5 rounds of %d; %.0f–%.0f)", ms[2], scrapes, ms[0], ms[4])
}

// exposition is what the manager's /metrics answered: Prometheus text.
type exposition string

// scrape reads the manager's metrics once. Each scrape is work for the
// manager (it exports a dozen series per Rollout): the release's figures
// are read from one scrape before it and one after, not one per figure.
func scrape(url string) exposition {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return exposition(body)
}

// scrapeSum adds up a counter's series, in a scrape of its own.
func scrapeSum(url, name string) float64 { return scrape(url).sum(name) }

// sum adds up a counter's series.
func (e exposition) sum(name string) float64 {
	var sum float64
	for _, line := range strings.Split(string(e), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// sumCount is a histogram's _sum and _count.
type sumCount struct{ sum, count float64 }

func (s sumCount) meanSince(before sumCount) float64 {
	if s.count == before.count {
		return 0
	}
	return (s.sum - before.sum) / (s.count - before.count)
}

// mean reads a histogram's _sum and _count for the series whose labels
// contain match.
func (e exposition) mean(name, match string) sumCount {
	var sc sumCount
	for _, line := range strings.Split(string(e), "\n") {
		if !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		switch {
		case strings.HasPrefix(line, name+"_sum{"):
			sc.sum += v
		case strings.HasPrefix(line, name+"_count{"):
			sc.count += v
		}
	}
	return sc
}

// fetch saves what url answers to path.
func fetch(hc *http.Client, url, path string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profileParts fetches consecutive 10 s CPU profiles from the pprof
// handlers under base into dir/prefix-NN.pprof until stop is called (pprof
// merges the files it is given); stop waits for the part under way and
// returns the first error.
func profileParts(hc *http.Client, base, dir, prefix string) (stop func() error) {
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() {
		for part := 1; ; part++ {
			err := fetch(hc, base+"/debug/pprof/profile?seconds=10", filepath.Join(dir, fmt.Sprintf("%s-%02d.pprof", prefix, part)))
			select {
			case <-stopped:
				done <- err
				return
			default:
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	return func() error {
		close(stopped)
		return <-done
	}
}

// profileAPIServer profiles the kube-apiserver (its /debug/pprof, on by
// default) until the returned stop is called, with -profile.
func (b *bench) profileAPIServer(e *env, strategy string, n int) (stop func() error) {
	hc, err := rest.HTTPClientFor(e.c.Config)
	if err != nil {
		return func() error { return err }
	}
	return profileParts(hc, strings.TrimSuffix(e.c.Config.Host, "/"), b.profileDir, fmt.Sprintf("apiserver-cpu-%s-%d", strategy, n))
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func freeAddr() string {
	a, err := freeport.Addr()
	if err != nil {
		fail(err)
	}
	return a
}

// stats gives median, min and max.
func stats(vs []float64) (med, lo, hi float64) {
	s := slices.Clone(vs)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0, 0, 0
	}
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return med, s[0], s[len(s)-1]
}

func col(runs []run, f func(run) float64, format string) string {
	vs := make([]float64, len(runs))
	for i, r := range runs {
		vs[i] = f(r)
	}
	med, lo, hi := stats(vs)
	if len(runs) == 1 {
		return fmt.Sprintf(format, med)
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", med, lo, hi)
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| strategy | N | create → all Initialized (s) | change → all Progressing (s) | change → last first shift (s) | change → all Succeeded (s) | reads/release | writes/release | events written / recorded | manager CPU ms/release | manager peak RSS (MiB) | kube-apiserver CPU s | idle requests/Rollout/min |")
	fmt.Fprintln(w, "|---|---:|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		sec := func(d func(run) time.Duration) func(run) float64 {
			return func(x run) float64 { return d(x).Seconds() }
		}
		var ew, er int
		for _, x := range r.runs {
			ew += x.eventsWritten
			er += x.eventsRecorded
		}
		idle := "–"
		if last := r.runs[len(r.runs)-1]; len(r.runs) > 0 {
			idle = fmt.Sprintf("%.3f", last.requestsIdleRoMin)
		}
		events := fmt.Sprintf("%d / %d", ew, er)
		cpu := col(r.runs, func(x run) float64 { return float64(x.managerCPU.Milliseconds()) / float64(r.n) }, "%.1f")
		peak := col(r.runs, func(x run) float64 { return float64(x.peakRSS) / (1 << 20) }, "%.0f")
		if r.strategy == floorStrategy { // no manager ran
			events, cpu, peak, idle = "–", "–", "–", "–"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.strategy, r.n,
			col(r.runs, sec(func(x run) time.Duration { return x.initialized }), "%.1f"),
			col(r.runs, sec(func(x run) time.Duration { return x.progressing }), "%.2f"),
			col(r.runs, sec(func(x run) time.Duration { return x.firstShift }), "%.2f"),
			col(r.runs, sec(func(x run) time.Duration { return x.succeeded }), "%.1f"),
			col(r.runs, func(x run) float64 { return x.reads }, "%.1f"),
			col(r.runs, func(x run) float64 { return x.writes }, "%.1f"),
			events, cpu, peak,
			col(r.runs, sec(func(x run) time.Duration { return x.apiServerCPU }), "%.1f"),
			idle)
	}
}

// idleResult is the idle fleet's figures.
type idleResult struct {
	n           int
	initialized time.Duration
	// idle and withUnrelated are the manager over the idle window, then
	// over another after the unrelated objects were added.
	idle, withUnrelated idleWindow
	unrelated           int
	// live and liveWithUnrelated are the Go heap after a forced
	// collection, with -profile (0 without).
	live, liveWithUnrelated float64
	requests, lease         int
	window                  time.Duration
}

// idleWindow is the manager over one idle window, scraped every
// scrapeInterval as the chart's ServiceMonitor does: each scrape builds
// every Rollout's series, and a point reading taken between scrapes would
// leave that out.
type idleWindow struct {
	// peak is the highest RSS over the window; rss is at its end.
	peak, rss int64
	mem       string // where the RSS is: see memBreakdown
	// cpu and collections are what the scrapes and the collector's pace
	// cost an idle fleet.
	cpu         time.Duration
	collections int
}

// watchIdle measures the manager over an idle window of b.idleWindow.
func (b *bench) watchIdle(ctx context.Context, e *env) (idleWindow, error) {
	var w idleWindow
	pid := e.mgr.Pid()
	if err := resetPeakRSS(pid); err != nil {
		return w, err
	}
	cpu0 := procCPU(pid)
	first := scrapeFor(ctx, e.metrics, b.idleWindow)
	w.cpu = procCPU(pid) - cpu0
	w.peak, w.rss = peakRSS(pid), rss(pid)
	last := scrape(e.metrics)
	w.mem = memBreakdown(pid, last)
	w.collections = collectionsBetween(first, last)
	return w, nil
}

func (r idleResult) print(w io.Writer) {
	fmt.Fprintf(w, "\n%d idle Rollouts (blue/green, Initialized in %.0f s): manager peak RSS %.0f MiB over %s with /metrics scraped every %s, %.0f MiB at its end; %d requests in it, %d of them the Lease (%.4f per idle Rollout per minute without it)\n",
		r.n, r.initialized.Seconds(), mib(r.idle.peak), r.window, scrapeInterval, mib(r.idle.rss), r.requests, r.lease,
		float64(r.requests-r.lease)/float64(r.n)/r.window.Minutes())
	r.idle.printDetail(w)
	fmt.Fprintf(w, "with %d unrelated Deployments, ConfigMaps and 4 KiB Secrets added: peak RSS %.0f MiB (+%.1f MiB), %.0f MiB at the end (+%.1f MiB)\n",
		r.unrelated, mib(r.withUnrelated.peak), mib(r.withUnrelated.peak-r.idle.peak), mib(r.withUnrelated.rss), mib(r.withUnrelated.rss-r.idle.rss))
	if r.live > 0 {
		fmt.Fprintf(w, "  live heap after a forced collection: %.1f MiB, then %.1f MiB (+%.1f MiB)\n", r.live, r.liveWithUnrelated, r.liveWithUnrelated-r.live)
	}
	r.withUnrelated.printDetail(w)
}

func (iw idleWindow) printDetail(w io.Writer) {
	fmt.Fprintf(w, "  %s\n", iw.mem)
	fmt.Fprintf(w, "  manager CPU %.2f s and %d collections over the window\n", iw.cpu.Seconds(), iw.collections)
}

// memBreakdown says where a process's RSS is: anonymous memory (the Go heap
// and stacks) against pages of the binary, and the Go heap's live bytes
// against what the runtime holds, from one scrape m of the manager's own
// metrics (each is work for the manager, and more in a row would disturb
// the memory they measure).
func memBreakdown(pid int, m exposition) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	kib := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(v, " kB") {
			f, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 64)
			kib[k] = f
		}
	}
	mib := func(name string) float64 { return m.sum(name) / (1 << 20) }
	return fmt.Sprintf("RSS %.0f MiB = anon %.0f + binary %.0f; Go heap in use %.0f MiB, held %.0f (idle and not released %.0f), next GC at %.0f, stacks %.0f",
		kib["VmRSS"]/1024, kib["RssAnon"]/1024, kib["RssFile"]/1024,
		mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_heap_sys_bytes")-mib("go_memstats_heap_released_bytes"),
		mib("go_memstats_heap_idle_bytes")-mib("go_memstats_heap_released_bytes"),
		mib("go_memstats_next_gc_bytes"), mib("go_memstats_stack_inuse_bytes"))
}

// collectionsBetween is how many collections the manager ran between two
// scrapes of its metrics.
func collectionsBetween(first, last exposition) int {
	return int(last.sum("go_gc_duration_seconds_count") - first.sum("go_gc_duration_seconds_count"))
}

// idlePerNamespace is how many Rollouts of the idle fleet share a namespace.
const idlePerNamespace = 100

// idleNamespace is the namespace of the idle fleet's i-th Rollout.
func idleNamespace(i int) string { return fmt.Sprintf("idle-%d", i/idlePerNamespace) }

// idleFleet initializes n Rollouts, watches them idle, then adds n
// unrelated Deployments (no replicas), ConfigMaps and Secrets of 4 KiB in
// another namespace and measures what they add to the manager's memory.
func (b *bench) idleFleet(ctx context.Context, n int) (idleResult, error) {
	res := idleResult{n: n, window: b.idleWindow}
	e, err := b.start(ctx, true)
	if err != nil {
		return res, err
	}
	defer e.stop(b.keep)
	c := e.c.Client
	// A fleet spans namespaces: idlePerNamespace Rollouts to each. (All in
	// one namespace, kube-controller-manager's Deployment, ReplicaSet and
	// EndpointSlice controllers list the whole namespace on every sync, and
	// 10,000 took longer than an hour to set up on two cores.)
	for i := 0; i < (n+idlePerNamespace-1)/idlePerNamespace; i++ {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: idleNamespace(i * idlePerNamespace)}}); err != nil {
			return res, err
		}
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}}); err != nil {
		return res, err
	}
	w := newWatcher(ctx, e, "") // every namespace: the names are unique across them
	defer w.stop()
	fmt.Fprintf(os.Stderr, "idle: creating %d Rollouts\n", n)
	t0 := time.Now()
	for lo := 0; lo < n; lo += b.idleWave {
		hi := min(n, lo+b.idleWave)
		if err := parallel(hi-lo, func(j int) error {
			d, ro := b.objects("bluegreen", idleNamespace(lo+j), lo+j)
			if err := c.Create(ctx, d); err != nil {
				return err
			}
			return c.Create(ctx, ro)
		}); err != nil {
			return res, err
		}
		if err := w.waitAll(ctx, hi, sluicev1.PhaseInitialized, 60*time.Minute); err != nil {
			return res, err
		}
		if hi < n {
			fmt.Fprintf(os.Stderr, "idle: %d Rollouts initialized in %s; %s\n", hi, time.Since(t0).Round(time.Second), memBreakdown(e.mgr.Pid(), scrape(e.metrics)))
		}
	}
	res.initialized = time.Since(t0)
	time.Sleep(10 * time.Second)
	t := time.Now()
	if res.idle, err = b.watchIdle(ctx, e); err != nil {
		return res, err
	}
	counts, err := countAudit(e.audit, t, time.Now())
	if err != nil {
		return res, err
	}
	res.requests, res.lease = counts.reads+counts.writes, counts.lease
	if err := b.heapProfile(e, "heap-idle-%d.pprof", n); err != nil {
		return res, err
	}
	res.live = b.liveHeap(e)

	res.unrelated = n
	if b.unrelated > 0 {
		res.unrelated = b.unrelated
	}
	fmt.Fprintf(os.Stderr, "idle: adding %d unrelated Deployments, ConfigMaps and Secrets\n", res.unrelated)
	payload := strings.Repeat("x", 4096)
	if err := parallel(res.unrelated, func(i int) error {
		name := fmt.Sprintf("other-%d", i)
		labels := map[string]string{"app": name}
		if err := c.Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "unrelated"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "other:1"}}}},
			},
		}); err != nil {
			return err
		}
		if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "unrelated"},
			Data: map[string]string{"data": payload}}); err != nil {
			return err
		}
		return c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "unrelated"},
			Data: map[string][]byte{"data": []byte(payload)}})
	}); err != nil {
		return res, err
	}
	// Let the watch events arrive and a garbage collection run.
	time.Sleep(30 * time.Second)
	if res.withUnrelated, err = b.watchIdle(ctx, e); err != nil {
		return res, err
	}
	if err := b.heapProfile(e, "heap-idle-unrelated-%d.pprof", n); err != nil {
		return res, err
	}
	res.liveWithUnrelated = b.liveHeap(e)
	return res, nil
}

// liveHeap is the manager's Go heap in MiB just after heapProfile forced a
// collection: what is live. Without -profile there was none, and it is 0.
func (b *bench) liveHeap(e *env) float64 {
	if b.profileDir == "" {
		return 0
	}
	return scrapeSum(e.metrics, "go_memstats_heap_alloc_bytes") / (1 << 20)
}

// heapProfile saves the manager's live heap (after a garbage collection)
// with -profile; the name takes the fleet size.
func (b *bench) heapProfile(e *env, name string, n int) error {
	if b.profileDir == "" {
		return nil
	}
	return fetch(http.DefaultClient, fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", e.pprof), filepath.Join(b.profileDir, fmt.Sprintf(name, n)))
}
