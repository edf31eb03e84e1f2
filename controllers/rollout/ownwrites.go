package rollout

import (
	"math"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/ownwrites"
)

// ownWrites remembers, per Rollout, the resourceVersions that this
// manager's own writes have left behind. The cache learns of a write a
// moment after the API server answers it; a reconcile woken in between (by
// a Deployment or EndpointSlice event, say) would decide again from the
// state before the write: repeat its events and actions, and have its
// status patch refused by the optimistic lock. Such a reconcile looks again
// a moment later instead.
//
// It also remembers the resourceVersion of the last write: a cached copy at
// that version has all of this manager's writes, so acting on it needs no
// uncached read to make sure (isCurrent).
type ownWrites struct {
	behind ownwrites.Versions[types.NamespacedName]

	mu   sync.Mutex
	last map[types.NamespacedName]string
	// status is when the status was last written.
	status map[types.NamespacedName]time.Time
	// awaited are the Rollouts whose reconcile found a cache behind and
	// looks again once it has caught up (await, caughtUp).
	awaited map[types.NamespacedName]bool
	// behindLooks counts, per Rollout, the reconciles in a row that found
	// its cached copy behind our own write (lookAgain).
	behindLooks map[types.NamespacedName]int
}

// messageHold is how long a status change of messages only waits for the
// next status write: a wait's message is at most this stale. At 2 s, the
// waits of 100 releases at once (for the Deployment controller to see a
// scale, for the primary to roll out) still wrote 2.6 such changes a
// release: 5 s keeps the words of a short wait out of the API server and
// still shows a long wait moving.
const messageHold = 5 * time.Second

// onlyMessages reports whether two statuses differ in their messages only:
// the Rollout's and its conditions' (same types, statuses and reasons).
func onlyMessages(a, b *sluicev1.RolloutStatus) bool {
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	ac, bc := a.DeepCopy(), b.DeepCopy()
	ac.Message, bc.Message = "", ""
	for i := range ac.Conditions {
		ac.Conditions[i].Message, bc.Conditions[i].Message = "", ""
	}
	return equality.Semantic.DeepEqual(ac, bc)
}

func newOwnWrites() *ownWrites {
	return &ownWrites{last: map[types.NamespacedName]string{}, status: map[types.NamespacedName]time.Time{},
		awaited: map[types.NamespacedName]bool{}, behindLooks: map[types.NamespacedName]int{}}
}

// lookAgain is when a reconcile that found the Rollout's cached copy
// behind our own write looks again, if the update that brings the cache up
// has not woken it first (awaitedRollout): staleRetry, doubled with each
// such look in a row up to staleRetryMax. The cache is behind for
// milliseconds on a quiet API server, and for seconds while it serves a
// fleet's releases; every event of the Rollout's Deployments and Services
// wakes it meanwhile, and each wake looked again every 200 ms until the
// update came: 29 looks a release at 1,000 releases at once
// (docs/performance.md), CPU the watch that brings the update needed.
func (o *ownWrites) lookAgain(key types.NamespacedName) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.behindLooks[key]
	o.behindLooks[key] = n + 1
	return min(staleRetry<<min(n, 5), staleRetryMax)
}

// lookedCurrent ends a Rollout's looks in a row at a cache behind.
func (o *ownWrites) lookedCurrent(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.behindLooks, key)
}

// await marks a Rollout whose reconcile found a cache behind (its own, or
// one of its objects'): the next update of the Rollout that the cache holds
// and that predates none of our writes wakes it (caughtUp). Updates of the
// status only wake nothing otherwise, and the status write that the cache
// lacked is one: the reconcile would wait for its timer (staleRetry) though
// the cache had caught up a few milliseconds after the write.
func (o *ownWrites) await(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.awaited[key] = true
}

// caughtUp reports, for an update of the Rollout the cache now holds at
// resourceVersion rv, whether it wakes a reconcile that awaits it; once.
func (o *ownWrites) caughtUp(key types.NamespacedName, rv string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.awaited[key] || o.behind.IsBehind(key, rv) {
		return false
	}
	delete(o.awaited, key)
	return true
}

// wrote records a write that moved the Rollout from resourceVersion from
// to to (a write that changed nothing keeps its resourceVersion).
func (o *ownWrites) wrote(key types.NamespacedName, from, to string) {
	if from == "" || from == to {
		return
	}
	o.behind.Wrote(key, from, to)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last[key] = to
}

// isBehind reports whether a cached copy of the Rollout at resourceVersion
// rv predates a write of ours (ownwrites.Versions.IsBehind).
func (o *ownWrites) isBehind(key types.NamespacedName, rv string) bool {
	return o.behind.IsBehind(key, rv)
}

// hasAll reports whether a cached copy at resourceVersion rv is the one our
// last write returned: it holds every write of this manager. After a
// restart nothing is known, and the caller reads the Rollout uncached.
func (o *ownWrites) hasAll(key types.NamespacedName, rv string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	last, ok := o.last[key]
	return ok && last == rv
}

// statusWritten records a status write at now.
func (o *ownWrites) statusWritten(key types.NamespacedName, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.status[key] = now
}

// sinceLast is how long ago the status was last written; after a restart,
// forever.
func (o *ownWrites) sinceLast(key types.NamespacedName, now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.status[key]
	if !ok {
		return time.Duration(math.MaxInt64)
	}
	return now.Sub(t)
}

func (o *ownWrites) forget(key types.NamespacedName) {
	o.behind.Forget(key)
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.last, key)
	delete(o.status, key)
	delete(o.awaited, key)
	delete(o.behindLooks, key)
}

// awaitedRollout passes the update of a Rollout whose reconcile awaits the
// cache catching up (ownWrites.await), and nothing else.
func (r *Reconciler) awaitedRollout() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return r.writes.caughtUp(client.ObjectKeyFromObject(e.ObjectNew), e.ObjectNew.GetResourceVersion())
		},
	}
}
