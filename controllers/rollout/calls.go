package rollout

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout/statemachine"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

// Hooks and checks run off the reconcile workers. A hook may take its whole
// timeout, and again for each retry; a worker waiting on it would wait for
// every Rollout, and a few Rollouts with slow hooks would hold all the
// workers and with them every other Rollout's rollback. So a reconcile that
// needs answers starts the calls in a goroutine and returns; their end wakes
// the Rollout, whose next reconcile decides with the answers.
//
// The answers are kept for the state they were asked from (callsKey), until
// the Rollout's recorded state moves on: a reconcile that could not record
// its decision (a conflict, a stale cache) decides again with the same
// answers rather than asking again. They live in memory only: another
// leader, or this one restarted, asks again from the recorded status, with
// the same idempotency keys (webhooks.CallState).

// maxCallsInFlight bounds the Rollouts whose hooks or checks run at once,
// all Rollouts together; others wait for a place. Each holds at most one
// HTTP call, as a Rollout's hooks are called one after another.
const maxCallsInFlight = 64

// pendingRecheck is when a Rollout waiting for its calls looks again even
// without the wake-up that their end sends.
const pendingRecheck = 30 * time.Second

// drainTimeout bounds how long a stopping manager waits for the calls in
// flight to end and their answers to be recorded: with the 5 s the event
// recorder and notifier then have to write what they hold, under the
// chart's terminationGracePeriodSeconds of 15, so that the manager hands its
// Lease over before it is killed. What is still running then is cancelled,
// and called again by the next leader.
const drainTimeout = 5 * time.Second

// answers is what a Rollout's calls answered, from one state.
type answers struct {
	checks *statemachine.CheckResult
	gates  map[sluicev1.HookType]statemachine.GateResult
}

// missing returns what of need the answers lack.
func (a *answers) missing(need statemachine.Need) statemachine.Need {
	var out statemachine.Need
	out.Checks = need.Checks && a.checks == nil
	for _, t := range need.Gates {
		if _, ok := a.gates[t]; !ok {
			out.Gates = append(out.Gates, t)
		}
	}
	return out
}

// of returns the answers to need, apart from a (which a round in flight may
// add to).
func (a *answers) of(need statemachine.Need) answers {
	var out answers
	if need.Checks && a.checks != nil {
		c := *a.checks
		c.Metrics = slices.Clone(c.Metrics)
		out.checks = &c
	}
	for _, t := range need.Gates {
		out.add(answers{gates: map[sluicev1.HookType]statemachine.GateResult{t: a.gates[t]}})
	}
	return out
}

func (a *answers) add(b answers) {
	if b.checks != nil {
		a.checks = b.checks
	}
	for t, g := range b.gates {
		if a.gates == nil {
			a.gates = map[sluicev1.HookType]statemachine.GateResult{}
		}
		a.gates[t] = g
	}
}

// callJob is one round of calls of a Rollout.
type callJob struct {
	key    string
	cancel context.CancelFunc
}

// rolloutCalls is what one Rollout has in flight and what it was answered.
type rolloutCalls struct {
	// key names the state the answers were asked from.
	key string
	got answers
	// running is the round in flight, if any: at most one per Rollout.
	running *callJob
	// ended counts the rounds that ended with answers; decided is the
	// count the last recorded decision started from.
	ended, decided uint64
}

// hookCalls runs the hooks and checks of the Rollouts in the background.
type hookCalls struct {
	// call makes the calls of need, from the state of ro (as recorded).
	call func(ctx context.Context, ro *sluicev1.Rollout, rev string, need statemachine.Need) answers
	// wake carries the Rollouts whose calls ended to the controller.
	wake  chan event.GenericEvent
	slots chan struct{}
	// base ends every call: at the end of a drain.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	byRollout map[types.NamespacedName]*rolloutCalls
	// stopping is set by a drain: no new calls start.
	stopping bool
}

func newHookCalls(call func(context.Context, *sluicev1.Rollout, string, statemachine.Need) answers) *hookCalls {
	base, cancel := context.WithCancel(context.Background())
	return &hookCalls{
		call:      call,
		wake:      make(chan event.GenericEvent, maxCallsInFlight),
		slots:     make(chan struct{}, maxCallsInFlight),
		base:      base,
		cancel:    cancel,
		byRollout: map[types.NamespacedName]*rolloutCalls{},
	}
}

// callsKey names the state calls are made from: the recorded status their
// idempotency keys derive from, and the spec generation (a changed webhook
// or metric is asked again).
func callsKey(ro *sluicev1.Rollout, rev string) string {
	return strconv.FormatInt(ro.Generation, 10) + "/" + webhooks.StateOf(ro, rev).Key("", "")
}

// get returns the answers to need from the state of ro (as recorded, and
// read from the API server in this reconcile). When some are missing it
// returns false, after starting the calls that gather them unless a round
// is in flight already.
func (c *hookCalls) get(ro *sluicev1.Rollout, rev string, need statemachine.Need) (answers, bool) {
	name := client.ObjectKeyFromObject(ro)
	key := callsKey(ro, rev)
	c.mu.Lock()
	defer c.mu.Unlock()
	rc := c.byRollout[name]
	if rc == nil {
		rc = &rolloutCalls{}
		c.byRollout[name] = rc
	}
	if rc.key != key {
		// The Rollout moved on: earlier answers are of no use, and a round
		// in flight is cancelled. The next round waits for its end, so
		// that a Rollout never has two.
		if rc.running != nil {
			rc.running.cancel()
		}
		rc.key, rc.got = key, answers{}
	}
	missing := rc.got.missing(need)
	if !missing.Checks && len(missing.Gates) == 0 {
		return rc.got.of(need), true
	}
	if rc.running != nil || c.stopping {
		return answers{}, false
	}
	ctx, cancel := context.WithCancel(c.base)
	job := &callJob{key: key, cancel: cancel}
	rc.running = job
	from := ro.DeepCopy()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		got, ok := c.run(ctx, from, rev, missing)
		c.mu.Lock()
		if rc.running == job {
			rc.running = nil
		}
		// Answers cut short (a cancel, a drain's end) are no verdict.
		if ok && rc.key == job.key {
			rc.got.add(got)
			rc.ended++
		}
		c.mu.Unlock()
		select {
		case c.wake <- event.GenericEvent{Object: from}:
		case <-c.base.Done():
		}
	}()
	return answers{}, false
}

// run makes the calls once a place is free; false when cut short.
func (c *hookCalls) run(ctx context.Context, ro *sluicev1.Rollout, rev string, need statemachine.Need) (answers, bool) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return answers{}, false
	}
	defer func() { <-c.slots }()
	got := c.call(ctx, ro, rev, need)
	return got, ctx.Err() == nil
}

// ended returns how many rounds of a Rollout ended with answers; a reconcile
// takes it before it decides and passes it to decided once its decision is
// recorded.
func (c *hookCalls) ended(name types.NamespacedName) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc := c.byRollout[name]; rc != nil {
		return rc.ended
	}
	return 0
}

// decided notes that a decision was recorded with the answers of n ended
// rounds, leaving the Rollout in the state named key: a round or answers of
// another state are of no use any more (an abort while a hook hangs).
func (c *hookCalls) decided(name types.NamespacedName, n uint64, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rc := c.byRollout[name]
	if rc == nil {
		return
	}
	rc.decided = max(rc.decided, n)
	if rc.key != key {
		if rc.running != nil {
			rc.running.cancel()
		}
		rc.key, rc.got = key, answers{}
	}
}

// forget cancels the calls of a Rollout that is gone or being deleted.
func (c *hookCalls) forget(name types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rc := c.byRollout[name]; rc != nil && rc.running != nil {
		rc.running.cancel()
	}
	delete(c.byRollout, name)
}

// busy reports whether calls are in flight, or answers wait for a decision.
func (c *hookCalls) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rc := range c.byRollout {
		if rc.running != nil || rc.decided < rc.ended {
			return true
		}
	}
	return false
}

// drain is a clean stop: no new calls start, and the calls in flight end
// and their answers are recorded by the reconciles they wake, as a stop
// used to wait for a reconcile that was calling a hook; a call is made
// again after a restart only when it was cut short. It gives up after
// timeout, then cancels what is left.
func (c *hookCalls) drain(timeout time.Duration) {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for c.busy() && time.Now().Before(deadline) {
		// Polled: this runs once, at shutdown.
		time.Sleep(50 * time.Millisecond)
	}
	c.cancel()
	c.wg.Wait()
}

// drainFirst is the manager as the Rollout controller's builder sees it:
// the controller it adds stops only after the hook calls have drained, so
// that the reconciles recording their answers still run.
type drainFirst struct {
	manager.Manager
	calls *hookCalls
}

func (m drainFirst) Add(r manager.Runnable) error {
	return m.Manager.Add(&drainedRunnable{Runnable: r, calls: m.calls})
}

type drainedRunnable struct {
	manager.Runnable
	calls *hookCalls
}

// NeedLeaderElection is the controller's own: only the leader reconciles.
func (d *drainedRunnable) NeedLeaderElection() bool {
	if le, ok := d.Runnable.(manager.LeaderElectionRunnable); ok {
		return le.NeedLeaderElection()
	}
	return true
}

// Start runs the controller with a context that ends once the calls have
// drained after ctx ends. A manager that lost its Lease does not wait for
// it: it skips the graceful shutdown and the process exits.
func (d *drainedRunnable) Start(ctx context.Context) error {
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			d.calls.drain(drainTimeout)
			cancel()
		case <-inner.Done():
			// The controller ended by itself: nobody takes the answers.
			d.calls.drain(0)
		}
	}()
	return d.Runnable.Start(inner)
}
