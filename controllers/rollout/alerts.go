package rollout

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/notify"
)

// Reasons of the AlertsReady condition and of the Warning event that says
// an alert cannot be sent.
const (
	ReasonAlertsReady             = "AlertsReady"
	ReasonAlertProviderNotFound   = "AlertProviderNotFound"
	ReasonAlertSecretNotFound     = "AlertSecretNotFound"
	ReasonAlertSecretNotOptedIn   = "AlertSecretNotOptedIn"
	ReasonAlertSecretInvalid      = "AlertSecretInvalid"
	ReasonAlertProviderUnreadable = "AlertProviderUnreadable"
)

// alertTarget is one alert of a Rollout, resolved to a sender.
type alertTarget struct {
	// key is the AlertProvider's namespace/name: one delivery lane each.
	key      string
	kind     string
	sender   notify.Sender
	severity sluicev1.AlertSeverity
}

// alertProblem says why an alert cannot be sent.
type alertProblem struct {
	alert, reason, message string
}

// alertsSeen is what this reconcile found of a Rollout's alerts; resolved
// is false until events were to be sent.
type alertsSeen struct {
	resolved bool
	targets  []alertTarget
	problems []alertProblem
}

// alertsOf returns the alerts of a Rollout's spec.
func alertsOf(ro *sluicev1.Rollout) []sluicev1.Alert {
	if ro.Spec.Analysis == nil {
		return nil
	}
	return ro.Spec.Analysis.Alerts
}

// resolveAlerts reads the AlertProviders of a Rollout's alerts and their
// Secrets, uncached, once per reconcile that has events to send. A Secret
// is used only if it opted in with sluicev1.AlertCredentialsLabel, in the
// Rollout's own namespace; what cannot be used is a problem, never an error
// of the reconcile: alerts never hold a release.
func (r *Reconciler) resolveAlerts(ctx context.Context, sc *scope) {
	if sc.alerts.resolved {
		return
	}
	sc.alerts.resolved = true
	for _, a := range alertsOf(sc.ro) {
		t, p := r.resolveAlert(ctx, sc.ro.Namespace, a)
		if p != nil {
			sc.alerts.problems = append(sc.alerts.problems, *p)
			continue
		}
		sc.alerts.targets = append(sc.alerts.targets, t)
	}
}

// resolveAlert resolves one alert to a sender, or says why it cannot.
func (r *Reconciler) resolveAlert(ctx context.Context, ns string, a sluicev1.Alert) (alertTarget, *alertProblem) {
	problem := func(reason, format string, args ...any) (alertTarget, *alertProblem) {
		return alertTarget{}, &alertProblem{alert: a.Name, reason: reason, message: fmt.Sprintf(format, args...)}
	}
	ap := &sluicev1.AlertProvider{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: a.ProviderRef.Name}, ap); err != nil {
		if apierrors.IsNotFound(err) {
			return problem(ReasonAlertProviderNotFound, "AlertProvider %s not found", a.ProviderRef.Name)
		}
		return problem(ReasonAlertProviderUnreadable, "reading AlertProvider %s: %v", a.ProviderRef.Name, err)
	}
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: ap.Spec.SecretRef.Name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return problem(ReasonAlertSecretNotFound, "AlertProvider %s: Secret %s not found", ap.Name, ap.Spec.SecretRef.Name)
		}
		return problem(ReasonAlertProviderUnreadable, "AlertProvider %s: reading Secret %s: %v", ap.Name, ap.Spec.SecretRef.Name, err)
	}
	if sec.Type == corev1.SecretTypeServiceAccountToken {
		return problem(ReasonAlertSecretInvalid, "AlertProvider %s: Secret %s is a service-account token: never used for alerts", ap.Name, sec.Name)
	}
	if sec.Labels[sluicev1.AlertCredentialsLabel] != "true" {
		return problem(ReasonAlertSecretNotOptedIn, "AlertProvider %s: Secret %s lacks the label %s: \"true\" that lets AlertProviders use it",
			ap.Name, sec.Name, sluicev1.AlertCredentialsLabel)
	}
	addr := strings.TrimSpace(string(sec.Data[sluicev1.AlertAddressKey]))
	if addr == "" {
		return problem(ReasonAlertSecretInvalid, "AlertProvider %s: Secret %s has no key %s with the receiver's URL",
			ap.Name, sec.Name, sluicev1.AlertAddressKey)
	}
	s, err := notify.AlertSender(ap.Spec.Type, addr, ap.Spec.Channel, ap.Spec.Username, r.AlertHTTP)
	if err != nil {
		// The error may quote the URL, which is a secret: say only what is wrong.
		return problem(ReasonAlertSecretInvalid, "AlertProvider %s: the %s of Secret %s is not an absolute http or https URL",
			ap.Name, sluicev1.AlertAddressKey, sec.Name)
	}
	return alertTarget{key: ns + "/" + ap.Name, kind: string(ap.Spec.Type), sender: s, severity: a.Severity}, nil
}

// sendAlerts hands m to every alert whose severity admits it.
func (r *Reconciler) sendAlerts(ctx context.Context, sc *scope, m notify.Message) {
	if len(alertsOf(sc.ro)) == 0 || r.Notifier == nil {
		return
	}
	r.resolveAlerts(ctx, sc)
	sev := notify.SeverityOf(m)
	for _, t := range sc.alerts.targets {
		if t.severity.Admits(sev) {
			r.Notifier.Alert(t.key, t.kind, t.sender, m)
		}
	}
}

// setAlertsCondition records on ro what this reconcile found of its
// alerts: AlertsReady True, or False with the first problem (all of them in
// the message), and a Warning event when that changes. Without alerts the
// condition is removed; with alerts not resolved in this reconcile (no
// event was sent), it is left as it was.
func (r *Reconciler) setAlertsCondition(ro *sluicev1.Rollout, before *sluicev1.RolloutStatus, seen alertsSeen) {
	if len(alertsOf(ro)) == 0 {
		meta.RemoveStatusCondition(&ro.Status.Conditions, sluicev1.ConditionAlerts)
		return
	}
	if !seen.resolved {
		return
	}
	c := metav1.Condition{Type: sluicev1.ConditionAlerts, Status: metav1.ConditionTrue, Reason: ReasonAlertsReady,
		Message: fmt.Sprintf("%d alerts can be sent", len(seen.targets)), ObservedGeneration: ro.Generation,
		LastTransitionTime: metav1.NewTime(r.Clock.Now())}
	if len(seen.problems) > 0 {
		msgs := make([]string, 0, len(seen.problems))
		for _, p := range seen.problems {
			msgs = append(msgs, fmt.Sprintf("alert %s: %s", p.alert, p.message))
		}
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, seen.problems[0].reason, strings.Join(msgs, "; ")
	}
	old := meta.FindStatusCondition(before.Conditions, sluicev1.ConditionAlerts)
	if c.Status == metav1.ConditionFalse && (old == nil || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message) {
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, c.Reason, "Alert", "%s (the release goes on without these alerts)", c.Message)
	}
	meta.SetStatusCondition(&ro.Status.Conditions, c)
}
