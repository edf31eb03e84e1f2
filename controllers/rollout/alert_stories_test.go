package rollout_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
)

// chatReceivers stands in for Discord, Google Chat and a generic webhook
// receiver, recording the event reason of each alert by path.
type chatReceivers struct {
	mu      sync.Mutex
	reasons map[string][]string
	url     string
}

var chatReason = regexp.MustCompile(`Reason: (\w+)$`)

func (s *story) chatReceivers() *chatReceivers {
	rc := &chatReceivers{reasons: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason string `json:"reason"` // webhook
			Text   string `json:"text"`   // googlechat
			Embeds []struct {
				Fields []struct{ Name, Value string } `json:"fields"`
			} `json:"embeds"` // discord
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reason := body.Reason
		if m := chatReason.FindStringSubmatch(body.Text); m != nil {
			reason = m[1]
		}
		for _, e := range body.Embeds {
			for _, f := range e.Fields {
				if f.Name == "Reason" {
					reason = f.Value
				}
			}
		}
		rc.mu.Lock()
		rc.reasons[r.URL.Path] = append(rc.reasons[r.URL.Path], reason)
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	s.t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *chatReceivers) got(path string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reasons[path])
}

// alertProvider creates an AlertProvider of type typ whose Secret holds
// address; optedIn labels the Secret sluice.dev/alert-credentials: "true".
func (s *story) alertProvider(name string, typ sluicev1.AlertProviderType, address string, optedIn bool) {
	s.t.Helper()
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-url", Namespace: s.ns},
		StringData: map[string]string{sluicev1.AlertAddressKey: address},
	}
	if optedIn {
		sec.Labels = map[string]string{sluicev1.AlertCredentialsLabel: "true"}
	}
	s.must(k8sClient.Create(s.ctx, sec))
	s.must(k8sClient.Create(s.ctx, &sluicev1.AlertProvider{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns},
		Spec:       sluicev1.AlertProviderSpec{Type: typ, SecretRef: sluicev1.LocalObjectReference{Name: sec.Name}},
	}))
}

func alert(name string, sev sluicev1.AlertSeverity, provider string) rolloutOpt {
	return func(ro *sluicev1.Rollout) {
		ro.Spec.Analysis.Alerts = append(ro.Spec.Analysis.Alerts,
			sluicev1.Alert{Name: name, Severity: sev, ProviderRef: sluicev1.LocalObjectReference{Name: provider}})
	}
}

// failingHook answers every call with a 500.
func (s *story) failingHook() string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "error rate 7%", http.StatusInternalServerError)
	}))
	s.t.Cleanup(srv.Close)
	return srv.URL
}

func (s *story) alertsCondition(name string) *metav1.Condition {
	return meta.FindStatusCondition(s.getRollout(name).Status.Conditions, sluicev1.ConditionAlerts)
}

func TestAlertsOfAFailedReleaseReachEachReceiverThatItsSeverityAdmits(t *testing.T) {
	s := newStory(t)
	rc := s.chatReceivers()
	s.alertProvider("team-chat", sluicev1.AlertDiscord, rc.url+"/discord", true)
	s.alertProvider("release-log", sluicev1.AlertWebhook, rc.url+"/webhook", true)
	s.alertProvider("on-call", sluicev1.AlertGoogleChat, rc.url+"/chat", true)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo",
		alert("everything", sluicev1.SeverityInfo, "team-chat"),
		alert("trouble", sluicev1.SeverityWarn, "release-log"),
		alert("page", sluicev1.SeverityError, "on-call"),
		webhook("smoke", sluicev1.HookRollout, s.failingHook()))

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)

	s.eventually(storyTimeout, "the rollback alerted at every severity", func() error {
		for _, path := range []string{"/discord", "/webhook", "/chat"} {
			if !slices.Contains(rc.got(path), "ThresholdReached") {
				return fmt.Errorf("%s got %v", path, rc.got(path))
			}
		}
		return nil
	})
	if got := rc.got("/chat"); !slices.Equal(got, []string{"ThresholdReached"}) {
		t.Errorf("the error alert got %v, want only the rollback", got)
	}
	if got := rc.got("/webhook"); !slices.Equal(got, []string{"CheckFailed", "CheckFailed", "ThresholdReached"}) {
		t.Errorf("the warn alert got %v, want the two failed checks and the rollback", got)
	}
	info := rc.got("/discord")
	for _, want := range []string{"Initialized", "NewRevision", "CheckFailed", "ThresholdReached"} {
		if !slices.Contains(info, want) {
			t.Errorf("the info alert got %v, lacking %s", info, want)
		}
	}
	if c := s.alertsCondition("podinfo"); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("condition %s = %+v, want True", sluicev1.ConditionAlerts, c)
	}
	s.expectKStatus("podinfo", status.FailedStatus)
}

func TestAnAlertWhoseSecretHasNotOptedInIsReportedAndTheReleaseCompletes(t *testing.T) {
	s := newStory(t)
	rc := s.chatReceivers()
	s.alertProvider("team-chat", sluicev1.AlertGoogleChat, rc.url+"/chat", false)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo",
		alert("team", sluicev1.SeverityInfo, "team-chat"),
		alert("ghost", sluicev1.SeverityError, "no-such-provider"))

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)

	c := s.alertsCondition("podinfo")
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "AlertSecretNotOptedIn" ||
		!strings.Contains(c.Message, "alert team: AlertProvider team-chat: Secret team-chat-url lacks the label sluice.dev/alert-credentials") ||
		!strings.Contains(c.Message, "alert ghost: AlertProvider no-such-provider not found") {
		t.Errorf("condition %s = %+v, want False naming the unlabelled Secret and the missing provider", sluicev1.ConditionAlerts, c)
	}
	s.waitEvent("podinfo", "AlertSecretNotOptedIn")
	if notes := s.eventNotes("podinfo", "AlertSecretNotOptedIn"); len(notes) == 0 || !strings.Contains(notes[0], "the release goes on") {
		t.Errorf("the Warning event says %v", notes)
	}
	if got := rc.got("/chat"); len(got) != 0 {
		t.Errorf("the receiver of a Secret that has not opted in got %v", got)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)

	// Opted in, the next release alerts; the missing provider still says so.
	sec := &corev1.Secret{}
	s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "team-chat-url"}, sec))
	sec.Labels = map[string]string{sluicev1.AlertCredentialsLabel: "true"}
	s.must(k8sClient.Update(s.ctx, sec))
	s.setImage("podinfo", "podinfo:3.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(storyTimeout, "the opted-in Secret's receiver got the release", func() error {
		if got := rc.got("/chat"); !slices.Contains(got, "Promoted") {
			return fmt.Errorf("got %v", got)
		}
		return nil
	})
	if c := s.alertsCondition("podinfo"); c == nil || c.Reason != "AlertProviderNotFound" || strings.Contains(c.Message, "team-chat") {
		t.Errorf("condition %s = %+v, want only the missing provider", sluicev1.ConditionAlerts, c)
	}
}

// alertsFailed reads sluice_alerts_failed_total for a provider type from
// the registry the manager exports.
func alertsFailed(t *testing.T, typ string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "sluice_alerts_failed_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == typ {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestAlertsPassTheEgressPolicyOfRolloutWebhooks(t *testing.T) {
	// The default policy: loopback, where the receiver listens, is denied.
	s := newStoryWith(t, manager.Options{WebhookEgressAllow: []string{}})
	rc := s.chatReceivers()
	s.alertProvider("team-chat", sluicev1.AlertGoogleChat, rc.url+"/chat", true)
	before := alertsFailed(t, "googlechat")
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", alert("team", sluicev1.SeverityInfo, "team-chat"))

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	s.eventually(storyTimeout, "the alerts refused and counted as failed", func() error {
		if n := alertsFailed(t, "googlechat") - before; n < 4 {
			return fmt.Errorf("%v failed alerts", n)
		}
		return nil
	})
	if got := rc.got("/chat"); len(got) != 0 {
		t.Errorf("a receiver on a denied address got %v", got)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}
