package convert

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// alertTypes maps Flagger's AlertProvider types to Sluice's.
var alertTypes = map[string]sluicev1.AlertProviderType{
	"slack": sluicev1.AlertSlack, "msteams": sluicev1.AlertMSTeams, "discord": sluicev1.AlertDiscord,
	"gchat": sluicev1.AlertGoogleChat, "googlechat": sluicev1.AlertGoogleChat,
	"generic": sluicev1.AlertWebhook, "webhook": sluicev1.AlertWebhook,
}

// secretOptIn says what a Secret needs before Sluice reads an alert URL
// from it.
func secretOptIn(name string) string {
	return fmt.Sprintf("Sluice reads the URL from the key %s of the Secret %s, and only once the Secret carries the label %s: \"true\"",
		sluicev1.AlertAddressKey, name, sluicev1.AlertCredentialsLabel)
}

// convertAlertProvider converts a Flagger AlertProvider. The URL is never
// carried inline: a Sluice AlertProvider reads it from an opted-in Secret.
func convertAlertProvider(r *reader, meta objectMeta) ([]map[string]any, error) {
	spec := r.obj("spec")
	if spec == nil {
		return nil, fmt.Errorf("the AlertProvider has no spec")
	}
	typ, _ := spec.str("type")
	t, ok := alertTypes[typ]
	if !ok {
		return nil, fmt.Errorf("spec.type %q: Sluice sends alerts to slack, msteams, discord, googlechat (Flagger's gchat) and a generic webhook", typ)
	}
	ap := &sluicev1.AlertProvider{
		TypeMeta: metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "AlertProvider"},
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace,
			Labels: meta.Labels, Annotations: meta.Annotations},
		Spec: sluicev1.AlertProviderSpec{Type: t},
	}
	switch {
	case typ == "gchat":
		spec.note("type", Changed, "gchat became googlechat; Sluice posts a text message to the space's incoming webhook")
	case t == sluicev1.AlertWebhook:
		spec.note("type", Differs, "Sluice's generic webhook receives Sluice's own JSON message (rollout, namespace, phase, weight, reason, text; docs/webhooks.md#notifications), not Flagger's")
	}
	name, hasSecret := spec.str("secretRef.name")
	if hasSecret {
		spec.note("secretRef", Differs, "%s; Flagger's proxy and token keys are not read", secretOptIn(name))
	} else {
		name = dnsName(meta.Name + "-address")
	}
	ap.Spec.SecretRef = sluicev1.LocalObjectReference{Name: name}
	if spec.has("address") {
		spec.use("address")
		if hasSecret {
			spec.note("address", NotCarried, "Sluice takes the URL from the Secret only; put it in the Secret's key %s if it is not there", sluicev1.AlertAddressKey)
		} else {
			spec.note("address", NotCarried, "Sluice never takes an alert URL inline: create the Secret %s in %s with the URL under the key %s and the label %s: \"true\" (the converted AlertProvider names it in secretRef)",
				name, namespaceOr(meta.Namespace), sluicev1.AlertAddressKey, sluicev1.AlertCredentialsLabel)
		}
	} else if !hasSecret {
		spec.note("secretRef", NotCarried, "neither address nor secretRef: create the Secret %s with the URL (the converted AlertProvider names it); %s", name, secretOptIn(name))
	}
	if ch, ok := spec.str("channel"); ok {
		if t == sluicev1.AlertSlack {
			ap.Spec.Channel = ch
		} else {
			spec.note("channel", NotCarried, "Sluice sets a channel for Slack only; a %s webhook posts where its URL points", t)
		}
	}
	if u, ok := spec.str("username"); ok {
		if t == sluicev1.AlertSlack || t == sluicev1.AlertDiscord {
			ap.Spec.Username = u
		} else {
			spec.note("username", NotCarried, "Sluice sets a username for Slack and Discord only")
		}
	}
	if spec.has("proxy") {
		spec.note("proxy", NotCarried, "Sluice has no proxy per AlertProvider: alerts go through the manager's own HTTPS_PROXY and its egress policy")
	}
	m, err := toMap(ap)
	if err != nil {
		return nil, err
	}
	return []map[string]any{m}, nil
}

// namespaceOr names a namespace for the report, or the current one.
func namespaceOr(ns string) string {
	if ns == "" {
		return "the AlertProvider's namespace"
	}
	return "namespace " + ns
}

// alerts maps a Canary's analysis.alerts: each names an AlertProvider of
// the Rollout's namespace and a severity.
func (c *canaryConv) alerts(a *reader) []sluicev1.Alert {
	var out []sluicev1.Alert
	var seen []string
	for _, al := range a.items("alerts") {
		name, _ := al.str("name")
		alert := sluicev1.Alert{Name: shorten(al, "name", name), Severity: sluicev1.SeverityInfo}
		if sev, ok := al.str("severity"); ok {
			switch s := sluicev1.AlertSeverity(sev); s {
			case sluicev1.SeverityInfo, sluicev1.SeverityWarn, sluicev1.SeverityError:
				alert.Severity = s
			default:
				al.note("severity", Changed, "%q is not info, warn or error: became info", sev)
			}
		}
		alert.ProviderRef.Name, _ = al.str("providerRef.name")
		if ns, ok := al.str("providerRef.namespace"); ok && ns != c.meta.Namespace {
			al.note("", NotCarried, "its AlertProvider is in namespace %s: a Rollout's alerts use AlertProviders of its own namespace only (copy the AlertProvider, and its Secret, to %s)",
				ns, namespaceOr(c.meta.Namespace))
			continue
		}
		switch {
		case alert.Name == "" || alert.ProviderRef.Name == "":
			al.note("", NotCarried, "an alert needs a name and providerRef.name")
			continue
		case slices.Contains(seen, alert.Name):
			al.note("name", NotCarried, "a second alert named %s: Sluice's alert names are unique", alert.Name)
			continue
		}
		seen = append(seen, alert.Name)
		out = append(out, alert)
	}
	return out
}
