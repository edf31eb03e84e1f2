package webhooks

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// TestEveryHookTypesFailuresAreExportedBeforeTheFirstOne: an alert on
// increase(sluice_webhook_failures_total[5m]) sees a type's first failure
// only if the series was there before it.
func TestEveryHookTypesFailuresAreExportedBeforeTheFirstOne(t *testing.T) {
	ch := make(chan prometheus.Metric)
	go func() { callFailures.Collect(ch); close(ch) }()
	exported := map[string]bool{}
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "type" {
				exported[l.GetValue()] = true
			}
		}
	}
	for _, typ := range []sluicev1.HookType{sluicev1.HookConfirmRollout, sluicev1.HookPreRollout, sluicev1.HookRollout,
		sluicev1.HookConfirmTrafficIncrease, sluicev1.HookConfirmPromotion, sluicev1.HookPostRollout,
		sluicev1.HookRollback, sluicev1.HookEvent} {
		if !exported[string(typ)] {
			t.Errorf("no sluice_webhook_failures_total series for %s before its first failure", typ)
		}
	}
}
