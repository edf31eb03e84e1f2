// Package recorder writes Sluice's Kubernetes Events (events.k8s.io/v1).
//
// It stands in for client-go's events broadcaster, which keeps a copy of
// every Event it wrote for six to twelve minutes to group repeats into
// series. Its key holds the regarding object's resourceVersion, which
// changes with each status update of a Rollout, so Sluice's events almost
// never formed a series: the copies were only memory, about an eighth of
// an idle fleet's heap right after its set-up. This recorder groups an
// event with an earlier one only when they say the same thing about the
// same object (the note included), remembers a bounded number of recent
// events, writes from a queue with a few workers rather than a goroutine
// per event, and drops nothing on the client's side: a write the API
// server cannot take yet is retried, and the queue is drained at shutdown.
package recorder

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	eventsclient "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/tools/reference"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

const (
	// seriesWindow is how long after an event the same event counts as a
	// repeat of it (a series) rather than a new Event.
	seriesWindow = 6 * time.Minute
	// maxRecent bounds the events remembered to form series.
	maxRecent = 1024
	// workers write events in parallel.
	workers = 4
	// maxTries of a write the API server cannot take (about a minute).
	maxTries = 12
	// retryAfter is the wait between tries.
	retryAfter = 5 * time.Second
	// drainTimeout bounds the writes at shutdown.
	drainTimeout = 5 * time.Second
	// noteLimit is the API server's limit on an Event's note, in bytes.
	noteLimit = 1024
)

// Recorder records events about Kubernetes objects. It implements
// k8s.io/client-go/tools/events.EventRecorder and runs as a
// controller-runtime Runnable (Start), which internal/manager starts before
// the manager and stops after it: a standby records nothing, but must take
// the events of the moment it leads, and a stopping leader those of the
// reconciles it waits for.
type Recorder struct {
	client     eventsclient.EventsGetter
	scheme     *runtime.Scheme
	controller string
	instance   string
	log        logr.Logger
	now        func() time.Time

	mu      sync.Mutex
	queue   []*entry
	wake    chan struct{}
	recent  map[string]*list.Element // of *entry
	order   *list.List               // least recently seen first
	stopped bool
	// failed counts the events given up on (the API server rejected them,
	// or kept failing for maxTries).
	failed int
}

// entry is one Event as written, and the repeats to add to its series.
type entry struct {
	key   string
	event *eventsv1.Event // as created; Series set by repeats
	count int32           // times recorded
	last  time.Time       // of the latest repeat
	// written: the Event exists on the API server (updates patch its series).
	written bool
	queued  bool
	tries   int
	retryAt time.Time
}

// New returns a recorder writing through c as reporting controller
// controller (the instance is controller-hostname).
func New(c eventsclient.EventsGetter, scheme *runtime.Scheme, controller string, log logr.Logger) *Recorder {
	host, _ := os.Hostname()
	instance := controller + "-" + host
	if len(instance) > 128 {
		instance = instance[:128]
	}
	return &Recorder{
		client: c, scheme: scheme, controller: controller, instance: instance, log: log, now: time.Now,
		wake: make(chan struct{}, 1), recent: map[string]*list.Element{}, order: list.New(),
	}
}

// Eventf records an event about regarding (and related, which may be nil).
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		r.log.Error(err, "no reference to the object of an event", "reason", reason)
		return
	}
	var relRef *corev1.ObjectReference
	if related != nil {
		if relRef, err = reference.GetReference(r.scheme, related); err != nil {
			r.log.Error(err, "no reference to the related object of an event", "reason", reason)
			relRef = nil
		}
	}
	msg := truncate(fmt.Sprintf(note, args...), noteLimit)
	key := strings.Join([]string{string(ref.UID), ref.Namespace, ref.Kind, ref.Name, eventtype, reason, action, relatedKey(relRef), msg}, "\x00")
	now := r.now()

	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.recent[key]; ok {
		e := el.Value.(*entry)
		if now.Sub(e.last) < seriesWindow {
			e.count++
			e.last = now
			r.order.MoveToBack(el)
			r.enqueue(e)
			return
		}
		r.order.Remove(el)
		delete(r.recent, key)
	}
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	e := &entry{key: key, count: 1, last: now, event: &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: eventName(ref.Name, now), Namespace: ns},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relRef,
		Note:                msg,
		Type:                eventtype,
	}}
	r.recent[key] = r.order.PushBack(e)
	for r.order.Len() > maxRecent {
		oldest := r.order.Front()
		r.order.Remove(oldest)
		delete(r.recent, oldest.Value.(*entry).key)
	}
	r.enqueue(e)
}

// enqueue queues e once (a queued entry sends its latest count); r.mu held.
func (r *Recorder) enqueue(e *entry) {
	if e.queued {
		return
	}
	e.queued = true
	r.queue = append(r.queue, e)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start writes the queued events until ctx ends, then drains the queue
// for at most drainTimeout.
func (r *Recorder) Start(ctx context.Context) error {
	running.Store(r)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() { defer wg.Done(); r.work(ctx, ctx.Done()) }()
	}
	<-ctx.Done()
	wg.Wait()
	drain, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	r.mu.Lock()
	r.stopped = true // retries at shutdown are not waited for
	r.mu.Unlock()
	for range workers {
		wg.Add(1)
		go func() { defer wg.Done(); r.work(drain, nil) }()
	}
	wg.Wait()
	if n := r.pending(); n > 0 {
		r.log.Info("events not written at shutdown", "count", n)
	}
	return nil
}

// running is the recorder that started last: the one a manager process
// runs, whose queue and failures its metrics show.
var running atomic.Pointer[Recorder]

func init() {
	ctrlmetrics.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_events_queued",
			Help: "Events recorded and not yet written, retries included: with sluice_events_total, what the API server has yet to store.",
		}, ofRunning((*Recorder).pending)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_events_failed_total",
			Help: "Events given up on: refused as invalid or forbidden (in a namespace being deleted among them), or not taken for about a minute of retries.",
		}, ofRunning((*Recorder).FailedWrites)),
	)
}

// ofRunning reads a count of the running recorder (0 before one starts).
func ofRunning(count func(*Recorder) int) func() float64 {
	return func() float64 {
		if r := running.Load(); r != nil {
			return float64(count(r))
		}
		return 0
	}
}

// pending is the number of queued events.
func (r *Recorder) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// FailedWrites is the number of events given up on.
func (r *Recorder) FailedWrites() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// work writes queued events until done closes (or, with done nil, until
// the queue is empty or ctx ends).
func (r *Recorder) work(ctx context.Context, done <-chan struct{}) {
	for ctx.Err() == nil {
		e, wait := r.next()
		if e == nil {
			if done == nil && wait < 0 {
				return
			}
			var due <-chan time.Time // none queued: wait to be woken
			if wait >= 0 {
				due = time.After(wait) // an unfired timer is collected (Go 1.23)
			}
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-due:
			}
			continue
		}
		r.write(ctx, e)
	}
}

// next takes the first queued entry due now; otherwise it returns how long
// until one is due (-1: none queued).
func (r *Recorder) next() (*entry, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	wait := time.Duration(-1)
	for i, e := range r.queue {
		if r.stopped || !e.retryAt.After(now) {
			r.queue = append(r.queue[:i], r.queue[i+1:]...)
			e.queued = false
			if len(r.queue) > 0 { // more for another worker
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
			return e, 0
		}
		if d := e.retryAt.Sub(now); wait < 0 || d < wait {
			wait = d
		}
	}
	return nil, wait
}

// write creates e's Event, or patches its series count, and retries
// what the API server could not take.
func (r *Recorder) write(ctx context.Context, e *entry) {
	r.mu.Lock()
	ev := e.event.DeepCopy()
	count, last, written := e.count, e.last, e.written
	r.mu.Unlock()
	if count > 1 {
		ev.Series = &eventsv1.EventSeries{Count: count, LastObservedTime: metav1.NewMicroTime(last)}
	}
	events := r.client.Events(ev.Namespace)
	var err error
	if written {
		patch, _ := json.Marshal(map[string]any{"series": ev.Series})
		_, err = events.Patch(ctx, ev.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if apierrors.IsNotFound(err) {
			// The API server let the Event expire: write it again.
			_, err = events.Create(ctx, ev, metav1.CreateOptions{})
		}
	} else {
		_, err = events.Create(ctx, ev, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// A timed-out create that went through: add the series to it.
			err = nil
			if count > 1 {
				r.mu.Lock()
				e.written = true
				r.enqueue(e)
				r.mu.Unlock()
				return
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		e.written, e.tries = true, 0
		return
	}
	e.tries++
	retry := !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) && !apierrors.IsForbidden(err) && e.tries < maxTries
	if !retry || r.stopped {
		r.failed++
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			// The namespace, and what the event is about, are being
			// deleted: no one will read it, and nothing went wrong that
			// an operator should chase in an error with a stack trace.
			r.log.Info("event not written: its namespace is being deleted", "reason", ev.Reason, "regarding", ev.Regarding.Name, "namespace", ev.Namespace)
			return
		}
		r.log.Error(err, "writing an event failed", "reason", ev.Reason, "regarding", ev.Regarding.Name, "namespace", ev.Namespace, "tries", e.tries)
		return
	}
	r.log.V(1).Info("writing an event failed, retrying", "reason", ev.Reason, "error", err.Error())
	e.retryAt = r.now().Add(retryAfter/2 + rand.N(retryAfter))
	r.enqueue(e)
}

// eventName is unique per object and time, as client-go names events.
func eventName(object string, at time.Time) string {
	if len(object) > 200 {
		object = object[:200]
	}
	return fmt.Sprintf("%s.%x", object, at.UnixNano())
}

func relatedKey(ref *corev1.ObjectReference) string {
	if ref == nil {
		return ""
	}
	return string(ref.UID) + "/" + ref.Kind + "/" + ref.Namespace + "/" + ref.Name
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
