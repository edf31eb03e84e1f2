package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/egress"
)

func TestAlertToDiscordIsAWebhookMessageWithAnEmbedOfEveryField(t *testing.T) {
	rc, url := newReceiver(t, http.StatusNoContent)
	if err := (&Discord{URL: url, Username: "sluice"}).Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	body, raw := rc.last(t)
	if body["content"] != "shop/podinfo: ThresholdReached" || body["username"] != "sluice" {
		t.Errorf("content/username = %v/%v in %s", body["content"], body["username"], raw)
	}
	embed := body["embeds"].([]any)[0].(map[string]any)
	if embed["description"] != rolledBack.Text || embed["color"] != float64(discordRed) {
		t.Errorf("embed = %v", embed)
	}
	mustContainAll(t, raw, `"name":"Rollout","value":"podinfo"`, `"name":"Namespace","value":"shop"`,
		`"name":"Phase","value":"Failed"`, `"name":"Weight","value":"25%"`, `"name":"Reason","value":"ThresholdReached"`,
		`"allowed_mentions":{"parse":[]}`)
}

func TestAlertToDiscordCutsATextLongerThanAnEmbedTakes(t *testing.T) {
	rc, url := newReceiver(t, http.StatusNoContent)
	m := rolledBack
	m.Text = strings.Repeat("é", 5000)
	if err := (&Discord{URL: url}).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	body, raw := rc.last(t)
	desc := body["embeds"].([]any)[0].(map[string]any)["description"].(string)
	if n := len([]rune(desc)); n != discordMaxDescription || !strings.HasSuffix(desc, "…") {
		t.Errorf("description has %d runes, want %d ending in an ellipsis", n, discordMaxDescription)
	}
	if strings.Contains(raw, `"username"`) {
		t.Errorf("a username was sent though none was set: %s", raw)
	}
}

func TestAlertToGoogleChatIsATextMessageWithEveryField(t *testing.T) {
	rc, url := newReceiver(t, http.StatusOK)
	if err := (&GoogleChat{URL: url}).Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	body, raw := rc.last(t)
	if len(body) != 1 {
		t.Errorf("body has more than text: %s", raw)
	}
	text, _ := body["text"].(string)
	mustContainAll(t, text, "*shop/podinfo: ThresholdReached*", rolledBack.Text, "Rollout: podinfo", "Namespace: shop",
		"Phase: Failed", "Weight: 25%", "Reason: ThresholdReached")
}

func TestAlertToSlackCarriesTheProvidersChannelAndUsername(t *testing.T) {
	rc, url := newReceiver(t, http.StatusOK)
	s, err := AlertSender(sluicev1.AlertSlack, url, "#releases", "sluice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	body, raw := rc.last(t)
	if body["channel"] != "#releases" || body["username"] != "sluice" || body["text"] != "shop/podinfo: ThresholdReached" {
		t.Errorf("slack body = %s", raw)
	}
	if err := (&Slack{URL: url}).Send(context.Background(), rolledBack); err != nil {
		t.Fatal(err)
	}
	if _, raw := rc.last(t); strings.Contains(raw, `"channel"`) || strings.Contains(raw, `"username"`) {
		t.Errorf("a Slack sender without channel or username sent them: %s", raw)
	}
}

func TestAlertSenderBuildsEachProviderTypesSender(t *testing.T) {
	for typ, want := range map[sluicev1.AlertProviderType]string{
		sluicev1.AlertSlack: "slack", sluicev1.AlertMSTeams: "teams", sluicev1.AlertDiscord: "discord",
		sluicev1.AlertGoogleChat: "googlechat", sluicev1.AlertWebhook: "webhook",
	} {
		s, err := AlertSender(typ, " https://hooks.example.com/x\n", "", "", nil)
		if err != nil || s.Name() != want {
			t.Errorf("%s: sender %v, err %v; want %s", typ, s, err, want)
		}
	}
	for _, bad := range []struct{ typ, url string }{{"slack", "hooks.slack.com/x"}, {"slack", "ftp://x/"}, {"pager", "https://x/"}} {
		if _, err := AlertSender(sluicev1.AlertProviderType(bad.typ), bad.url, "", "", nil); err == nil {
			t.Errorf("%s %q was accepted", bad.typ, bad.url)
		}
	}
}

func TestAlertSeverityOfEachEvent(t *testing.T) {
	for _, tc := range []struct {
		warning bool
		reason  string
		want    sluicev1.AlertSeverity
	}{
		{false, "NewRevision", sluicev1.SeverityInfo},
		{false, "Promoted", sluicev1.SeverityInfo},
		{false, "WeightChanged", sluicev1.SeverityInfo},
		{true, "CheckFailed", sluicev1.SeverityWarn},
		{true, "PostRolloutHooksFailed", sluicev1.SeverityWarn},
		{true, "ActionIgnored", sluicev1.SeverityWarn},
		{true, "ThresholdReached", sluicev1.SeverityError},
		{true, "ProgressDeadlineExceeded", sluicev1.SeverityError},
		{true, "RollbackRequested", sluicev1.SeverityError},
		{true, "Aborted", sluicev1.SeverityError},
		{true, "TargetNotFound", sluicev1.SeverityError},
		{true, "PromotionStalled", sluicev1.SeverityError},
		{true, "PrimaryNotRestorable", sluicev1.SeverityError},
	} {
		if got := SeverityOf(Message{Warning: tc.warning, Reason: tc.reason}); got != tc.want {
			t.Errorf("%s (warning %v): severity %s, want %s", tc.reason, tc.warning, got, tc.want)
		}
	}
}

func TestAlertSeverityFilterAdmitsTheSeverityAndAbove(t *testing.T) {
	info, warn, errS := sluicev1.SeverityInfo, sluicev1.SeverityWarn, sluicev1.SeverityError
	for _, tc := range []struct {
		alert, event sluicev1.AlertSeverity
		want         bool
	}{
		{info, info, true}, {info, warn, true}, {info, errS, true},
		{warn, info, false}, {warn, warn, true}, {warn, errS, true},
		{errS, info, false}, {errS, warn, false}, {errS, errS, true},
		{"", info, true},
	} {
		if got := tc.alert.Admits(tc.event); got != tc.want {
			t.Errorf("an alert of severity %q admits an event of %q: %v, want %v", tc.alert, tc.event, got, tc.want)
		}
	}
}

func TestAlertLanesDeliverPerProviderAndAHangingOneDelaysOnlyItself(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	ok, okURL := newReceiver(t, http.StatusOK)
	sentBefore := counter(t, alertsSent, "googlechat")
	droppedBefore := counter(t, alertsDropped, "discord")

	const queue = 3
	d := NewDispatcher(nil, nil, queue, logr.Discard())
	d.StopDrain = 100 * time.Millisecond // the hanging alert in flight at the stop
	// Queued before Run starts: the lane starts with it.
	if !d.Alert("shop/chat", "googlechat", &GoogleChat{URL: okURL}, rolledBack) {
		t.Fatal("the first alert was dropped")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	accepted := 0
	for range 50 {
		if d.Alert("shop/discord", "discord", &Discord{URL: slow.URL}, rolledBack) {
			accepted++
		}
	}
	d.Alert("shop/chat", "googlechat", &GoogleChat{URL: okURL}, rolledBack)
	waitFor(t, func() bool { return counter(t, alertsSent, "googlechat") == sentBefore+2 })
	if dropped := int(counter(t, alertsDropped, "discord") - droppedBefore); accepted > queue+1 || dropped != 50-accepted {
		t.Errorf("the hanging provider accepted %d and dropped %d of 50: want at most %d kept, the rest dropped and counted",
			accepted, dropped, queue+1)
	}
	ok.mu.Lock()
	if n := len(ok.raw); n != 2 {
		t.Errorf("the chat receiver got %d alerts, want 2", n)
	}
	ok.mu.Unlock()
	cancel()
	<-done
}

func TestAlertsGoThroughTheEgressPolicyTheyAreGiven(t *testing.T) {
	rc, url := newReceiver(t, http.StatusOK)
	policy, err := egress.New(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := AlertSender(sluicev1.AlertWebhook, url, "", "", &http.Client{Transport: policy.Transport(nil)})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), rolledBack)
	if err == nil || !strings.Contains(err.Error(), "loopback addresses are denied") {
		t.Errorf("err = %v, want the loopback refusal", err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.raw) != 0 {
		t.Errorf("the receiver on loopback got %d alerts", len(rc.raw))
	}
}

func TestAlertFailuresAreCountedByProviderType(t *testing.T) {
	_, url := newReceiver(t, http.StatusForbidden)
	before := counter(t, alertsFailed, "msteams")
	d := NewDispatcher(nil, nil, 4, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	d.Alert("shop/teams", "msteams", &Teams{URL: url}, rolledBack)
	waitFor(t, func() bool { return counter(t, alertsFailed, "msteams") == before+1 })
	cancel()
	<-done
}
