package notify

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/sluice-dev/sluice/pkg/webhooks"
)

var (
	sentTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_notifications_sent_total",
		Help: "Notifications delivered, by sender.",
	}, []string{"sender"})
	failedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_notifications_failed_total",
		Help: "Notifications that could not be delivered, by sender.",
	}, []string{"sender"})
	droppedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_notifications_dropped_total",
		Help: "Notifications dropped because the sender's queue was full, or still queued when the manager stopped, by sender.",
	}, []string{"sender"})
)

func init() {
	metrics.Registry.MustRegister(sentTotal, failedTotal, droppedTotal)
}

// SendTimeout bounds one delivery.
const SendTimeout = 10 * time.Second

// StopDrain bounds the deliveries a stopping dispatcher still makes. It
// runs beside the event recorder's drain, once the reconcilers have
// stopped (after at most controllers/rollout's drainTimeout of 5 s): the
// two fit the chart's terminationGracePeriodSeconds of 15.
const StopDrain = 5 * time.Second

// Dispatcher delivers messages to its senders in the background. Each
// sender has its own bounded queue and worker, so a hanging receiver delays
// only its own messages; Dispatch never blocks: when a queue is full the
// message is dropped for that sender and counted.
type Dispatcher struct {
	lanes []*lane
	log   logr.Logger
	// Timeout bounds one delivery (SendTimeout when 0).
	Timeout time.Duration
	// StopDrain bounds the deliveries after Run's ctx ends (StopDrain when
	// 0).
	StopDrain time.Duration

	queueSize int
	// mu guards the AlertProviders' lanes (alert.go), made on their first
	// alert, and runCtx and sendCtx, set once Run has started.
	mu     sync.Mutex
	alerts map[string]*alertLane
	runCtx context.Context
	// sendCtx is the deliveries' context: it outlives runCtx by StopDrain.
	sendCtx context.Context
	wg      sync.WaitGroup
}

type lane struct {
	sender Sender
	queue  chan Message
	// hooksOnly lanes take only messages that carry their Rollout's hooks.
	hooksOnly bool
}

// NewDispatcher returns a dispatcher for the senders, each with a queue of
// queueSize messages (at least 1). It always has a lane for the event
// webhooks a Rollout declares itself (Message.Hooks), which hooks calls (a
// plain client when nil): give it the client of the Rollouts' other
// webhooks, whose URLs come from the same author and pass the same checks.
func NewDispatcher(senders []Sender, hooks *webhooks.Client, queueSize int, log logr.Logger) *Dispatcher {
	queueSize = max(queueSize, 1)
	d := &Dispatcher{log: log, queueSize: queueSize}
	for _, s := range senders {
		d.lanes = append(d.lanes, &lane{sender: s, queue: make(chan Message, queueSize)})
	}
	if hooks == nil {
		hooks = &webhooks.Client{}
	}
	d.lanes = append(d.lanes, &lane{sender: &rolloutEvents{client: hooks}, queue: make(chan Message, queueSize), hooksOnly: true})
	for _, l := range d.lanes {
		// Make the series visible at zero.
		name := l.sender.Name()
		sentTotal.WithLabelValues(name)
		failedTotal.WithLabelValues(name)
		droppedTotal.WithLabelValues(name)
	}
	return d
}

// Dispatch queues m for every sender without blocking; it returns how many
// senders accepted it (the others had a full queue and dropped it).
func (d *Dispatcher) Dispatch(m Message) int {
	accepted := 0
	for _, l := range d.lanes {
		if l.hooksOnly && len(m.Hooks) == 0 {
			continue
		}
		select {
		case l.queue <- m:
			accepted++
		default:
			droppedTotal.WithLabelValues(l.sender.Name()).Inc()
			d.log.Info("notification queue full: message dropped", "sender", l.sender.Name(),
				"rollout", m.Namespace+"/"+m.Rollout, "reason", m.Reason)
		}
	}
	return accepted
}

// Run delivers queued messages until ctx ends, then what the queues still
// hold for at most StopDrain; the rest is counted as dropped. It fits
// manager.RunnableFunc.
func (d *Dispatcher) Run(ctx context.Context) error {
	drain := d.StopDrain
	if drain <= 0 {
		drain = StopDrain
	}
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(drain, cancel) })
	defer stop()
	d.mu.Lock()
	d.runCtx, d.sendCtx = ctx, sendCtx
	for _, l := range d.alerts {
		d.startAlertLane(l)
	}
	for _, l := range d.lanes {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.drain(ctx, sendCtx, l)
		}()
	}
	d.mu.Unlock()
	d.wg.Wait()
	return nil
}

// timeout bounds one delivery.
func (d *Dispatcher) timeout() time.Duration {
	if d.Timeout <= 0 {
		return SendTimeout
	}
	return d.Timeout
}

// drain delivers l's messages until ctx ends, then those still queued
// until sendCtx ends; it counts the rest as dropped.
func (d *Dispatcher) drain(ctx, sendCtx context.Context, l *lane) {
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case m := <-l.queue:
			d.send(sendCtx, l, m)
		}
	}
	for {
		select {
		case m := <-l.queue:
			if sendCtx.Err() != nil {
				droppedTotal.WithLabelValues(l.sender.Name()).Inc()
				d.log.Info("notification not sent: the manager stopped", "sender", l.sender.Name(),
					"rollout", m.Namespace+"/"+m.Rollout, "reason", m.Reason)
				continue
			}
			d.send(sendCtx, l, m)
		default:
			return
		}
	}
}

// send delivers m to l's sender within the delivery timeout, and counts it.
func (d *Dispatcher) send(ctx context.Context, l *lane, m Message) {
	name := l.sender.Name()
	sctx, cancel := context.WithTimeout(ctx, d.timeout())
	err := l.sender.Send(sctx, m)
	cancel()
	if err != nil {
		failedTotal.WithLabelValues(name).Inc()
		d.log.Error(err, "sending notification", "sender", name, "rollout", m.Namespace+"/"+m.Rollout, "reason", m.Reason)
		return
	}
	sentTotal.WithLabelValues(name).Inc()
}
