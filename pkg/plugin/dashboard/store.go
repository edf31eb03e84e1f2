package dashboard

import (
	"encoding/json"
	"sort"
	"sync"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// maxHistory is how many traffic changes the server keeps per Rollout.
const maxHistory = 500

// subscriberBuffer is how many messages a browser tab may fall behind
// before it is dropped; its EventSource reconnects and starts from a fresh
// snapshot.
const subscriberBuffer = 64

// message is one server-sent event: its name and JSON data.
type message struct {
	event string
	data  []byte
}

// subscriber is one browser tab's stream.
type subscriber struct {
	ch chan message
}

// snapshot is the first message a tab receives: everything known now.
type snapshot struct {
	Rollouts []rolloutView     `json:"rollouts"`
	Problems map[string]string `json:"problems"`
	Synced   bool              `json:"synced"`
}

// store holds what the shared watches saw, the traffic history since the
// server started, and the browser tabs to tell about changes. The watches
// write to it; the tabs only read.
type store struct {
	now func() time.Time

	mu       sync.Mutex
	rollouts map[string]*sluicev1.Rollout
	events   map[string]map[types.UID]*eventsv1.Event
	history  map[string][]trafficPoint
	// recent holds each Rollout's metrics' last values, by metric name.
	recent   map[string]map[string][]metricPoint
	problems map[string]string
	synced   bool
	subs     map[*subscriber]struct{}
}

func newStore(now func() time.Time) *store {
	return &store{
		now:      now,
		rollouts: map[string]*sluicev1.Rollout{},
		events:   map[string]map[types.UID]*eventsv1.Event{},
		history:  map[string][]trafficPoint{},
		recent:   map[string]map[string][]metricPoint{},
		problems: map[string]string{},
		subs:     map[*subscriber]struct{}{},
	}
}

func key(ns, name string) string { return ns + "/" + name }

// setRollout records a Rollout as the watch saw it, and a traffic point
// when its split or phase changed.
func (s *store) setRollout(ro *sluicev1.Rollout) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(ro.Namespace, ro.Name)
	if old := s.rollouts[k]; old != nil && old.UID != ro.UID {
		delete(s.history, k)
		delete(s.recent, k)
	}
	s.rollouts[k] = ro
	s.history[k] = appendPoint(s.history[k], trafficPoint{T: s.now(), Canary: ro.Status.CanaryTraffic(), Phase: phaseOf(ro)})
	for _, m := range ro.Status.Metrics {
		if m.CheckedAt == nil || m.Value == "" {
			continue
		}
		if s.recent[k] == nil {
			s.recent[k] = map[string][]metricPoint{}
		}
		s.recent[k][m.Name] = appendMetric(s.recent[k][m.Name], metricPoint{checkedAt: m.CheckedAt.Time, value: m.Value})
	}
	s.publishView(k)
}

// appendPoint adds p to h unless the split and phase are the same as the
// last point's, keeping at most maxHistory points.
func appendPoint(h []trafficPoint, p trafficPoint) []trafficPoint {
	if n := len(h); n > 0 && h[n-1].Canary == p.Canary && h[n-1].Phase == p.Phase {
		return h
	}
	h = append(h, p)
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	return h
}

// maxMetricValues is how many of a metric's last values the page shows.
const maxMetricValues = 8

// metricPoint is one checked value of a metric.
type metricPoint struct {
	checkedAt time.Time
	value     string
}

// appendMetric adds a value checked at a new time, keeping the last
// maxMetricValues.
func appendMetric(h []metricPoint, p metricPoint) []metricPoint {
	if n := len(h); n > 0 && h[n-1].checkedAt.Equal(p.checkedAt) {
		return h
	}
	h = append(h, p)
	if len(h) > maxMetricValues {
		h = h[len(h)-maxMetricValues:]
	}
	return h
}

func phaseOf(ro *sluicev1.Rollout) string {
	if ro.Status.Phase == "" {
		return "Pending"
	}
	return string(ro.Status.Phase)
}

// deleteRollout forgets a Rollout and its history.
func (s *store) deleteRollout(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(ns, name)
	delete(s.rollouts, k)
	delete(s.history, k)
	delete(s.recent, k)
	delete(s.events, k)
	data, _ := json.Marshal(map[string]string{"namespace": ns, "name": name})
	s.publish(message{event: "deleted", data: data})
}

// setEvent records (or, with gone, forgets) an event about a Rollout.
func (s *store) setEvent(e *eventsv1.Event, gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(e.Regarding.Namespace, e.Regarding.Name)
	if e.Regarding.Namespace == "" {
		k = key(e.Namespace, e.Regarding.Name)
	}
	if gone {
		delete(s.events[k], e.UID)
	} else {
		if s.events[k] == nil {
			s.events[k] = map[types.UID]*eventsv1.Event{}
		}
		s.events[k][e.UID] = e
	}
	if _, ok := s.rollouts[k]; ok {
		s.publishView(k)
	}
}

// setProblem records why a watch fails ("" when it works again) and tells
// the tabs.
func (s *store) setProblem(source, problem string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.problems[source] == problem {
		return
	}
	if problem == "" {
		delete(s.problems, source)
	} else {
		s.problems[source] = problem
	}
	data, _ := json.Marshal(s.problems)
	s.publish(message{event: "problems", data: data})
}

// setSynced marks the first full list of Rollouts as seen.
func (s *store) setSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.synced = true
	s.publish(message{event: "synced", data: []byte("true")})
}

// subscribe adds a tab; it returns the snapshot to send first.
func (s *store) subscribe() (message, *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := snapshot{Rollouts: []rolloutView{}, Problems: s.problems, Synced: s.synced}
	keys := make([]string, 0, len(s.rollouts))
	for k := range s.rollouts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		snap.Rollouts = append(snap.Rollouts, s.viewLocked(k))
	}
	data, _ := json.Marshal(snap)
	sub := &subscriber{ch: make(chan message, subscriberBuffer)}
	s.subs[sub] = struct{}{}
	return message{event: "snapshot", data: data}, sub
}

// unsubscribe removes a tab (it may have been dropped already).
func (s *store) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[sub]; ok {
		delete(s.subs, sub)
		close(sub.ch)
	}
}

// viewLocked builds the view of the Rollout at k; s.mu is held.
func (s *store) viewLocked(k string) rolloutView {
	var evs []*eventsv1.Event
	for _, e := range s.events[k] {
		evs = append(evs, e)
	}
	h := append([]trafficPoint(nil), s.history[k]...)
	recent := map[string][]string{}
	for name, pts := range s.recent[k] {
		for _, p := range pts {
			recent[name] = append(recent[name], p.value)
		}
	}
	return buildView(s.rollouts[k], evs, h, recent)
}

// publishView sends the Rollout at k to every tab; s.mu is held.
func (s *store) publishView(k string) {
	data, _ := json.Marshal(s.viewLocked(k))
	s.publish(message{event: "rollout", data: data})
}

// publish sends m to every tab without waiting: a tab that fell
// subscriberBuffer messages behind is dropped; s.mu is held.
func (s *store) publish(m message) {
	for sub := range s.subs {
		select {
		case sub.ch <- m:
		default:
			delete(s.subs, sub)
			close(sub.ch)
		}
	}
}
