package rollout

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// alertSecret builds the Secret "url" of namespace shop with data; opts
// change it.
func alertSecret(data map[string]string, opts ...func(*corev1.Secret)) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "url", Namespace: "shop",
		Labels: map[string]string{sluicev1.AlertCredentialsLabel: "true"}}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func TestResolvingAnAlertSaysWhyItCannotBeSentWithoutShowingTheURL(t *testing.T) {
	provider := &sluicev1.AlertProvider{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: "shop"},
		Spec: sluicev1.AlertProviderSpec{Type: sluicev1.AlertDiscord, SecretRef: sluicev1.LocalObjectReference{Name: "url"}, Username: "sluice"}}
	const url = "https://discord.com/api/webhooks/1/SECRET"
	for _, tc := range []struct {
		name      string
		objs      []runtime.Object
		reason    string // empty: resolved
		inMessage string
	}{
		{"an opted-in Secret with an address", []runtime.Object{provider, alertSecret(map[string]string{"address": url + "\n"})}, "", ""},
		{"no AlertProvider", nil, ReasonAlertProviderNotFound, "AlertProvider chat not found"},
		{"no Secret", []runtime.Object{provider}, ReasonAlertSecretNotFound, "Secret url not found"},
		{"a Secret without the label", []runtime.Object{provider, alertSecret(map[string]string{"address": url},
			func(s *corev1.Secret) { s.Labels = nil })}, ReasonAlertSecretNotOptedIn, `lacks the label sluice.dev/alert-credentials: "true"`},
		{"a Secret labelled false", []runtime.Object{provider, alertSecret(map[string]string{"address": url},
			func(s *corev1.Secret) { s.Labels[sluicev1.AlertCredentialsLabel] = "false" })}, ReasonAlertSecretNotOptedIn, "lacks the label"},
		{"a labelled service-account token", []runtime.Object{provider, alertSecret(map[string]string{"address": url},
			func(s *corev1.Secret) { s.Type = corev1.SecretTypeServiceAccountToken })}, ReasonAlertSecretInvalid, "service-account token"},
		{"a Secret without address", []runtime.Object{provider, alertSecret(map[string]string{"url": url})}, ReasonAlertSecretInvalid, "has no key address"},
		{"an address that is not a URL", []runtime.Object{provider, alertSecret(map[string]string{"address": "discord.com/SECRET"})},
			ReasonAlertSecretInvalid, "not an absolute http or https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := runtime.NewScheme()
			_ = clientgoscheme.AddToScheme(s)
			_ = sluicev1.AddToScheme(s)
			r := &Reconciler{APIReader: fake.NewClientBuilder().WithScheme(s).WithRuntimeObjects(tc.objs...).Build()}
			got, p := r.resolveAlert(context.Background(), "shop",
				sluicev1.Alert{Name: "team", Severity: sluicev1.SeverityWarn, ProviderRef: sluicev1.LocalObjectReference{Name: "chat"}})
			if tc.reason == "" {
				if p != nil {
					t.Fatalf("not resolved: %+v", p)
				}
				if got.key != "shop/chat" || got.kind != "discord" || got.severity != sluicev1.SeverityWarn || got.sender.Name() != "discord" {
					t.Errorf("resolved to %+v", got)
				}
				return
			}
			if p == nil || p.reason != tc.reason || !strings.Contains(p.message, tc.inMessage) || p.alert != "team" {
				t.Fatalf("problem %+v, want reason %s saying %q", p, tc.reason, tc.inMessage)
			}
			if strings.Contains(p.message, "SECRET") {
				t.Errorf("the message shows the URL: %s", p.message)
			}
		})
	}
}
