//go:build e2e

package e2e

import (
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// TestConfigOnlyChangeReleased: changing only a ConfigMap the app reads
// releases it like a new version: the canary answers with the new
// message at the configured weight, and after promotion everyone gets it.
func TestConfigOnlyChangeReleased(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "config-change")
	var changed time.Time
	byMessage := func(h cluster.Hit) string { return h.Message }
	s.Given("app v1 reading MESSAGE=hello from ConfigMap podinfo-config, behind a canary Rollout (steps 30, 60; 5s each), under load", func() {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: "podinfo-config"}, Data: map[string]string{"MESSAGE": "hello"}}
		s.Must(s.c.Client.Create(s.ctx, cm), "creating the ConfigMap")
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2, ConfigMap: "podinfo-config"})
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(30, 60), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 5 * time.Second}, Threshold: 2,
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		s.StartLoad(50)
		s.Eventually(20*time.Second, "hello answered", func() (bool, string) {
			sp := s.Load.SplitBy(time.Now().Add(-time.Second), time.Now(), byMessage)
			return sp.Total > 20 && sp.Share("hello") == 100, sp.String()
		})
	}).When("only the ConfigMap changes: MESSAGE=bonjour", func() {
		cm := &corev1.ConfigMap{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: "podinfo-config"}, cm), "reading the ConfigMap")
		cm.Data["MESSAGE"] = "bonjour"
		s.Must(s.c.Client.Update(s.ctx, cm), "updating the ConfigMap")
		changed = time.Now()
	}).Then("a release runs and is promoted", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		s.ExpectEvents("NewRevision", "Promoted")
	}).And("at each step the share of answers with the new message matched the weight", func() {
		for _, w := range s.WeightWindows(changed) {
			from, to := w.Measured()
			if !to.After(from) {
				continue
			}
			sp, late := s.settledSplit(w, "bonjour", byMessage, splitTolerance)
			s.Figure("config split at weight "+strconv.Itoa(int(w.Weight))+"%", sp.String())
			if late > 0 {
				s.Figure("config weight "+strconv.Itoa(int(w.Weight))+"% applied by the gateway later than the settle time by", late)
			}
			if d := sp.Share("bonjour") - float64(w.Weight); sp.Total < 20 || d > splitTolerance || d < -splitTolerance {
				s.Fatalf("weight %d: %s", w.Weight, sp)
			}
		}
		if len(s.WeightWindows(changed)) == 0 {
			s.Fatalf("no weight was reported while Progressing")
		}
	}).And("everyone now gets the new message, from the primary's copy of the ConfigMap", func() {
		s.Eventually(20*time.Second, "bonjour only", func() (bool, string) {
			sp := s.Load.SplitBy(time.Now().Add(-2*time.Second), time.Now(), byMessage)
			return sp.Total > 40 && sp.Share("bonjour") == 100, sp.String()
		})
		cm := &corev1.ConfigMap{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: "podinfo-config-primary"}, cm), "reading the primary's ConfigMap")
		if cm.Data["MESSAGE"] != "bonjour" {
			s.Fatalf("podinfo-config-primary MESSAGE=%q", cm.Data["MESSAGE"])
		}
	})
}
