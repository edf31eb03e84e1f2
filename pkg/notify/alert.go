package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// ErrorReasons are the reasons of the events of severity error: the
// release was rolled back, or stopped and needs someone.
var ErrorReasons = []string{
	// Rollbacks.
	"ThresholdReached", "ProgressDeadlineExceeded", "RollbackRequested", "TargetNotFound", "Aborted",
	// Stalled releases.
	"PrimaryNotRestorable", "PromotionStalled",
}

// SeverityOf is the severity of an event: error for the reasons of
// ErrorReasons, warn for every other Warning event (a failed check, failed
// post-rollout hooks, an ignored action), info for Normal events.
func SeverityOf(m Message) sluicev1.AlertSeverity {
	switch {
	case !m.Warning:
		return sluicev1.SeverityInfo
	case isErrorReason(m.Reason):
		return sluicev1.SeverityError
	default:
		return sluicev1.SeverityWarn
	}
}

func isErrorReason(reason string) bool {
	for _, r := range ErrorReasons {
		if r == reason {
			return true
		}
	}
	return false
}

// AlertSender returns the sender of an AlertProvider of type t posting to
// rawURL through hc (which should pass the egress policy and refuse
// redirects). channel and username go to the receivers that have them.
func AlertSender(t sluicev1.AlertProviderType, rawURL, channel, username string, hc *http.Client) (Sender, error) {
	rawURL = strings.TrimSpace(rawURL)
	if err := checkURL(rawURL); err != nil {
		return nil, err
	}
	switch t {
	case sluicev1.AlertSlack:
		return &Slack{URL: rawURL, HTTP: hc, Channel: channel, Username: username}, nil
	case sluicev1.AlertMSTeams:
		return &Teams{URL: rawURL, HTTP: hc}, nil
	case sluicev1.AlertDiscord:
		return &Discord{URL: rawURL, HTTP: hc, Username: username}, nil
	case sluicev1.AlertGoogleChat:
		return &GoogleChat{URL: rawURL, HTTP: hc}, nil
	case sluicev1.AlertWebhook:
		return &Webhook{URL: rawURL, HTTP: hc}, nil
	}
	return nil, fmt.Errorf("unknown alert provider type %q", t)
}

var (
	alertsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_alerts_sent_total",
		Help: "Alerts delivered to AlertProviders, by provider type.",
	}, []string{"type"})
	alertsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_alerts_failed_total",
		Help: "Alerts that could not be delivered to their AlertProvider, by provider type.",
	}, []string{"type"})
	alertsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_alerts_dropped_total",
		Help: "Alerts dropped because their AlertProvider's queue was full, or still queued when the manager stopped, by provider type.",
	}, []string{"type"})
)

func init() {
	metrics.Registry.MustRegister(alertsSent, alertsFailed, alertsDropped)
	for _, t := range []sluicev1.AlertProviderType{sluicev1.AlertSlack, sluicev1.AlertMSTeams, sluicev1.AlertDiscord, sluicev1.AlertGoogleChat, sluicev1.AlertWebhook} {
		alertsSent.WithLabelValues(string(t))
		alertsFailed.WithLabelValues(string(t))
		alertsDropped.WithLabelValues(string(t))
	}
}

// alertIdle is how long an AlertProvider's lane waits for a message before
// its worker ends (a new message starts it again).
const alertIdle = 5 * time.Minute

// alertJob is one alert: the message and the sender built for it from its
// AlertProvider as it was read.
type alertJob struct {
	sender Sender
	kind   string
	m      Message
}

// alertLane is the queue and worker of one AlertProvider.
type alertLane struct {
	key   string
	queue chan alertJob
}

// Alert queues m for the AlertProvider key (namespace/name) of type kind,
// to be sent by s, without blocking: each AlertProvider has its own queue
// and worker, so a hanging receiver delays only its own alerts. It returns
// false when that queue was full and the alert was dropped (and counted).
func (d *Dispatcher) Alert(key, kind string, s Sender, m Message) bool {
	m.Hooks = nil
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.alerts[key]
	if l == nil {
		l = &alertLane{key: key, queue: make(chan alertJob, d.queueSize)}
		if d.alerts == nil {
			d.alerts = map[string]*alertLane{}
		}
		d.alerts[key] = l
		if d.runCtx != nil {
			d.startAlertLane(l)
		}
	}
	select {
	case l.queue <- alertJob{sender: s, kind: kind, m: m}:
		return true
	default:
		alertsDropped.WithLabelValues(kind).Inc()
		d.log.Info("alert queue full: alert dropped", "alertProvider", key, "rollout", m.Namespace+"/"+m.Rollout, "reason", m.Reason)
		return false
	}
}

// startAlertLane starts the worker of l; d.mu is held.
func (d *Dispatcher) startAlertLane(l *alertLane) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.drainAlerts(d.runCtx, d.sendCtx, l)
	}()
}

// drainAlerts sends l's alerts until ctx ends or the lane has been idle for
// alertIdle; an idle lane is removed, so that a deleted AlertProvider
// leaves no worker behind. Once ctx ends it sends those still queued until
// sendCtx ends, and counts the rest as dropped.
func (d *Dispatcher) drainAlerts(ctx, sendCtx context.Context, l *alertLane) {
	idle := time.NewTimer(alertIdle)
	defer idle.Stop()
	for {
		if ctx.Err() != nil {
			d.flushAlerts(sendCtx, l)
			return
		}
		select {
		case <-ctx.Done():
		case <-idle.C:
			d.mu.Lock()
			if len(l.queue) == 0 {
				delete(d.alerts, l.key)
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			idle.Reset(alertIdle)
		case j := <-l.queue:
			d.sendAlert(sendCtx, l, j)
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(alertIdle)
		}
	}
}

// flushAlerts sends l's queued alerts until ctx ends, then counts the rest
// as dropped.
func (d *Dispatcher) flushAlerts(ctx context.Context, l *alertLane) {
	for {
		select {
		case j := <-l.queue:
			if ctx.Err() != nil {
				alertsDropped.WithLabelValues(j.kind).Inc()
				d.log.Info("alert not sent: the manager stopped", "alertProvider", l.key,
					"rollout", j.m.Namespace+"/"+j.m.Rollout, "reason", j.m.Reason)
				continue
			}
			d.sendAlert(ctx, l, j)
		default:
			return
		}
	}
}

// sendAlert delivers j within the delivery timeout, and counts it.
func (d *Dispatcher) sendAlert(ctx context.Context, l *alertLane, j alertJob) {
	sctx, cancel := context.WithTimeout(ctx, d.timeout())
	err := j.sender.Send(sctx, j.m)
	cancel()
	if err != nil {
		alertsFailed.WithLabelValues(j.kind).Inc()
		d.log.Error(err, "sending alert", "alertProvider", l.key, "type", j.kind,
			"rollout", j.m.Namespace+"/"+j.m.Rollout, "reason", j.m.Reason)
		return
	}
	alertsSent.WithLabelValues(j.kind).Inc()
}
