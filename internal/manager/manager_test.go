package manager

import (
	"testing"

	"github.com/sluice-dev/sluice/pkg/egress"
)

// A client-wide timeout would cut every webhook call at it, whatever the
// webhook's own timeout says: the calls are bounded by their webhooks'.
func TestTheWebhookClientHasNoTimeoutOfItsOwn(t *testing.T) {
	policy, err := egress.New(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := webhookClient(Options{}, policy)
	if err != nil {
		t.Fatal(err)
	}
	if hc.Timeout != 0 {
		t.Errorf("the webhook client's timeout is %s, want none: each call has its webhook's", hc.Timeout)
	}
	if hc.Transport == nil {
		t.Errorf("the webhook client has no transport of its own: its connections would skip the egress policy")
	}
}
