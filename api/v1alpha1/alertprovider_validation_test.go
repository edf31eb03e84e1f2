package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func alertProvider(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "sluice.dev/v1alpha1", "kind": "AlertProvider",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec":     spec,
	}}
}

// TestTheAPIServerAcceptsEachAlertProviderTypeAndRefusesBadInput: a type
// from the list, a Secret name, and the options only where the receiver has
// them.
func TestTheAPIServerAcceptsEachAlertProviderTypeAndRefusesBadInput(t *testing.T) {
	secret := map[string]any{"name": "chat-url"}
	for i, tc := range []struct {
		name string
		spec map[string]any
		want string // empty: accepted
	}{
		{"slack with a channel and a username", map[string]any{"type": "slack", "secretRef": secret, "channel": "#releases", "username": "sluice"}, ""},
		{"msteams", map[string]any{"type": "msteams", "secretRef": secret}, ""},
		{"discord with a username", map[string]any{"type": "discord", "secretRef": secret, "username": "Sluice bot"}, ""},
		{"googlechat", map[string]any{"type": "googlechat", "secretRef": secret}, ""},
		{"webhook", map[string]any{"type": "webhook", "secretRef": secret}, ""},
		{"an unknown type", map[string]any{"type": "pagerduty", "secretRef": secret}, `Unsupported value: "pagerduty"`},
		{"no type", map[string]any{"secretRef": secret}, "spec.type: Required value"},
		{"no secretRef", map[string]any{"type": "slack"}, "spec.secretRef: Required value"},
		{"an empty secret name", map[string]any{"type": "slack", "secretRef": map[string]any{"name": ""}}, "spec.secretRef.name"},
		{"a channel on discord", map[string]any{"type": "discord", "secretRef": secret, "channel": "#releases"},
			"channel is a Slack option"},
		{"a username on googlechat", map[string]any{"type": "googlechat", "secretRef": secret, "username": "sluice"},
			"username is a Slack or Discord option"},
		{"a channel with a space", map[string]any{"type": "slack", "secretRef": secret, "channel": "#two words"},
			"channel must be a Slack channel or user name"},
		{"a username on two lines", map[string]any{"type": "slack", "secretRef": secret, "username": "a\nb"},
			"username must be one line"},
		{"an inline address", map[string]any{"type": "slack", "secretRef": secret, "address": "https://hooks.slack.com/x"},
			`unknown field "spec.address"`},
	} {
		err := k8sClient.Create(context.Background(), alertProvider(fmt.Sprintf("ap-%d", i), tc.spec), client.DryRunAll, client.FieldValidation("Strict"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: rejected: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want a rejection saying %q", tc.name, err, tc.want)
		}
	}
}

// TestARolloutsAlertsNeedAProviderAndAKnownSeverity: alerts default to
// info, name an AlertProvider, and are unique by name.
func TestARolloutsAlertsNeedAProviderAndAKnownSeverity(t *testing.T) {
	ok := rollout(t, "alerts-valid", validSpec, set("analysis.alerts", []any{
		map[string]any{"name": "team", "providerRef": map[string]any{"name": "chat"}},
		map[string]any{"name": "on-call", "severity": "error", "providerRef": map[string]any{"name": "pager"}},
	}))
	if err := k8sClient.Create(context.Background(), ok, client.DryRunAll); err != nil {
		t.Fatalf("valid alerts rejected: %v", err)
	}
	alerts, _, _ := unstructured.NestedSlice(ok.Object, "spec", "analysis", "alerts")
	if sev := alerts[0].(map[string]any)["severity"]; sev != "info" {
		t.Errorf("severity defaulted to %v, want info", sev)
	}
	for i, tc := range []struct {
		name   string
		alerts []any
		want   string
	}{
		{"an unknown severity", []any{map[string]any{"name": "a", "severity": "critical", "providerRef": map[string]any{"name": "chat"}}},
			`Unsupported value: "critical"`},
		{"no providerRef", []any{map[string]any{"name": "a"}}, "providerRef: Required value"},
		{"two alerts of one name", []any{
			map[string]any{"name": "a", "providerRef": map[string]any{"name": "chat"}},
			map[string]any{"name": "a", "providerRef": map[string]any{"name": "pager"}}}, "Duplicate value"},
	} {
		ro := rollout(t, fmt.Sprintf("alerts-bad-%d", i), validSpec, set("analysis.alerts", tc.alerts))
		if err := k8sClient.Create(context.Background(), ro, client.DryRunAll); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a rejection saying %q", tc.name, err, tc.want)
		}
	}
}
