package rollout_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/analysis"
)

// statsServer is a JSON stats endpoint for web templates: it answers
// {"errors": 0} and records the Authorization header of each request.
type statsServer struct {
	*httptest.Server
	mu    sync.Mutex
	auths map[string]int
}

func newStatsServer(t *testing.T) *statsServer {
	s := &statsServer{auths: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auths[r.Header.Get("Authorization")]++
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": 0})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *statsServer) sawAuth(a string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths[a] > 0
}

// sharedStory is a story whose manager reads ClusterMetricTemplates'
// Secrets from a platform namespace, which also holds MetricTemplates.
type sharedStory struct {
	*story
	platform string
	stats    *statsServer
}

func newSharedStory(t *testing.T) *sharedStory {
	t.Helper()
	platform := fmt.Sprintf("platform-%d", nsCounter.Add(1))
	if err := k8sClient.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: platform}}); err != nil {
		t.Fatal(err)
	}
	s := &sharedStory{story: newStoryWith(t, manager.Options{ClusterTemplateSecretNamespace: platform}), platform: platform, stats: newStatsServer(t)}
	s.must(k8sClient.Create(s.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "stats-token", Namespace: platform,
		Labels: map[string]string{sluicev1.MetricsCredentialsLabel: "true"}}, StringData: map[string]string{"token": "platform"}}))
	return s
}

func (s *sharedStory) webSpec() sluicev1.MetricTemplateSpec {
	return sluicev1.MetricTemplateSpec{Query: "/errors?app={{ .target }}", Provider: sluicev1.MetricProvider{
		Type: sluicev1.ProviderWeb, Address: s.stats.URL, JSONPath: "{.errors}", SecretRef: &sluicev1.LocalObjectReference{Name: "stats-token"}}}
}

func errorsAtMost(name string, ref sluicev1.MetricTemplateReference) rolloutOpt {
	return metric(sluicev1.MetricCheck{Name: name, TemplateRef: &ref, ThresholdRange: &sluicev1.ThresholdRange{Max: ptrTo(0.0)}})
}

func TestARolloutUsesAClusterMetricTemplateAndATemplateSharedWithItsNamespace(t *testing.T) {
	s := newSharedStory(t)
	cluster := "errors-" + s.ns // cluster-scoped: one per story
	s.must(k8sClient.Create(s.ctx, &sluicev1.ClusterMetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: cluster}, Spec: s.webSpec()}))
	t.Cleanup(func() {
		_ = k8sClient.Delete(s.ctx, &sluicev1.ClusterMetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: cluster}})
	})
	s.must(k8sClient.Create(s.ctx, &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "errors", Namespace: s.platform,
		Annotations: map[string]string{sluicev1.SharedWithAnnotation: s.ns}}, Spec: s.webSpec()}))
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(2),
		errorsAtMost("cluster-errors", sluicev1.MetricTemplateReference{Name: cluster, Kind: sluicev1.KindClusterMetricTemplate}),
		errorsAtMost("shared-errors", sluicev1.MetricTemplateReference{Name: "errors", Namespace: s.platform}))

	s.setImage("podinfo", "podinfo:2.0")

	ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	for _, name := range []string{"cluster-errors", "shared-errors"} {
		if ms, ok := metricStatus(ro, name); !ok || ms.Verdict != analysis.VerdictPass {
			t.Errorf("%s: %+v, want Pass", name, ms)
		}
	}
	if !s.stats.sawAuth("Bearer platform") {
		t.Errorf("the stats server never saw the platform namespace's token: %v", s.stats.auths)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestATemplateThatIsMissingOrNotSharedFailsTheCheckAndSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name string
		ref  func(s *sharedStory) sluicev1.MetricTemplateReference
		says func(s *sharedStory) string
	}{
		{"a missing ClusterMetricTemplate",
			func(*sharedStory) sluicev1.MetricTemplateReference {
				return sluicev1.MetricTemplateReference{Name: "nope", Kind: sluicev1.KindClusterMetricTemplate}
			},
			func(*sharedStory) string { return "errors: ClusterMetricTemplate nope not found" }},
		{"a missing MetricTemplate",
			func(*sharedStory) sluicev1.MetricTemplateReference {
				return sluicev1.MetricTemplateReference{Name: "nope"}
			},
			func(*sharedStory) string { return "errors: MetricTemplate nope not found" }},
		{"a MetricTemplate of another namespace that is not shared",
			func(s *sharedStory) sluicev1.MetricTemplateReference {
				return sluicev1.MetricTemplateReference{Name: "private", Namespace: s.platform}
			},
			func(s *sharedStory) string {
				return "errors: MetricTemplate " + s.platform + "/private is not shared with namespace " + s.ns
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSharedStory(t)
			s.must(k8sClient.Create(s.ctx, &sluicev1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "private", Namespace: s.platform}, Spec: s.webSpec()}))
			s.deploy("podinfo", "podinfo:1.0")
			s.initialized("podinfo", iterations(2), errorsAtMost("errors", tc.ref(s)))

			s.setImage("podinfo", "podinfo:2.0")

			ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
			ms, _ := metricStatus(ro, "errors")
			if ms.Verdict != analysis.VerdictError || !strings.HasPrefix(ms.Message, tc.says(s)) {
				t.Errorf("metric status %+v, want an Error saying %q", ms, tc.says(s))
			}
			if s.stats.sawAuth("Bearer platform") {
				t.Errorf("the platform's token was sent for a template the Rollout may not use")
			}
			s.waitEventSaying("podinfo", "CheckFailed", tc.says(s))
			s.expectKStatus("podinfo", status.FailedStatus)
		})
	}
}
