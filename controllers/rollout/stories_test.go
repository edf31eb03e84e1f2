package rollout_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/webhooks"
)

const storyTimeout = 30 * time.Second

// initialized installs a Deployment and its Rollout and waits until Sluice
// has taken it over.
func (s *story) initialized(name string, opts ...rolloutOpt) *sluicev1.Rollout {
	s.t.Helper()
	s.rollout(name, opts...)
	return s.waitPhase(name, sluicev1.PhaseInitialized, storyTimeout)
}

func TestInstallingARolloutHandsTrafficToAPrimaryAndScalesTheTargetToZero(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")

	ro := s.initialized("podinfo")

	primary := s.getDeployment("podinfo-primary")
	if img := primary.Spec.Template.Spec.Containers[0].Image; img != "podinfo:1.0" {
		t.Errorf("primary image = %s, want podinfo:1.0", img)
	}
	if replicas(primary) != 2 {
		t.Errorf("primary replicas = %d, want the target's 2", replicas(primary))
	}
	if got := primary.Spec.Selector.MatchLabels; !maps.Equal(got, map[string]string{"app": "podinfo-primary"}) {
		t.Errorf("primary selector = %v, want its own app=podinfo-primary", got)
	}
	if !metav1.IsControlledBy(primary, ro) {
		t.Errorf("primary is not owned by the Rollout")
	}
	s.eventually(5*time.Second, "target scaled to zero", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("target replicas = %d", n)
		}
		return nil
	})
	if sel := s.getService("podinfo").Spec.Selector; !maps.Equal(sel, map[string]string{"app": "podinfo-primary"}) {
		t.Errorf("apex Service selects %v, want the primary", sel)
	}
	if sel := s.getService("podinfo-canary").Spec.Selector; !maps.Equal(sel, map[string]string{"app": "podinfo"}) {
		t.Errorf("canary Service selects %v, want the target's pods", sel)
	}
	if port := s.getService("podinfo-primary").Spec.Ports[0]; port.Port != 9898 || port.Name != "http" {
		t.Errorf("primary Service port = %+v, want http/9898", port)
	}
	if ro.Status.StableRevision == "" {
		t.Errorf("status.stableRevision is empty")
	}
	s.waitEvent("podinfo", "Initialized")
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestANewImageIsReleasedThroughTheCanaryAndPromoted(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	before := s.initialized("podinfo", iterations(3))

	s.setImage("podinfo", "podinfo:2.0")

	s.eventually(storyTimeout, "canary scaled up while the release runs", func() error {
		ro := s.getRollout("podinfo")
		if ro.Status.Phase != sluicev1.PhaseProgressing {
			return fmt.Errorf("phase %s", ro.Status.Phase)
		}
		if n := replicas(s.getDeployment("podinfo")); n != 2 {
			return fmt.Errorf("canary replicas = %d", n)
		}
		return nil
	})
	s.expectKStatus("podinfo", status.InProgressStatus)

	ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if img := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s, want podinfo:2.0", img)
	}
	if ro.Status.StableRevision == before.Status.StableRevision {
		t.Errorf("stable revision did not change")
	}
	s.eventually(5*time.Second, "canary scaled to zero after promotion", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("canary replicas = %d", n)
		}
		return nil
	})
	if sel := s.getService("podinfo").Spec.Selector; sel["app"] != "podinfo-primary" {
		t.Errorf("apex Service selects %v after promotion, want the primary", sel)
	}
	s.waitEvent("podinfo", "Promoted")
	reasons := s.eventReasons("podinfo")
	for _, want := range []string{"NewRevision", "Promoting", "PrimaryUpdated", "Promoted"} {
		if !slices.Contains(reasons, want) {
			t.Errorf("events %v lack %s", reasons, want)
		}
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestAConfigMapChangeIsReleasedLikeAnImageChange(t *testing.T) {
	s := newStory(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-config", Namespace: s.ns}, Data: map[string]string{"color": "blue"}}
	s.must(k8sClient.Create(s.ctx, cm))
	s.deploy("podinfo", "podinfo:1.0", withConfigMapEnv("podinfo-config", "color"))
	s.initialized("podinfo")

	copyOf := func() *corev1.ConfigMap {
		c := &corev1.ConfigMap{}
		s.must(k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo-config-primary"}, c))
		return c
	}
	if got := copyOf().Data["color"]; got != "blue" {
		t.Fatalf("primary's config copy has color=%q, want blue", got)
	}
	ref := s.getDeployment("podinfo-primary").Spec.Template.Spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name
	if ref != "podinfo-config-primary" {
		t.Errorf("primary reads ConfigMap %s, want its own copy podinfo-config-primary", ref)
	}

	cm.Data["color"] = "green"
	s.must(k8sClient.Update(s.ctx, cm))

	s.waitEvent("podinfo", "NewRevision")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if got, _ := s.configData(false, s.primaryConfigRef("podinfo")); got["color"] != "green" {
		t.Errorf("after the release the primary's copy has color=%q, want green", got)
	}
	// The primary's pods must restart to read the new copy.
	stable := s.getRollout("podinfo").Status.StableRevision
	if got := s.getDeployment("podinfo-primary").Spec.Template.Annotations["sluice.dev/revision"]; got != stable {
		t.Errorf("the primary's pod template is at revision %q, want %q: its pods keep the old configuration", got, stable)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func TestACanaryThatNeverBecomesReadyIsRolledBackAtTheProgressDeadline(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", progressDeadline(2))
	primaryBefore := s.getDeployment("podinfo-primary")

	s.holdWhen(func(d *appsv1.Deployment) bool {
		return d.Name == "podinfo" && d.Spec.Template.Spec.Containers[0].Image == "podinfo:broken"
	})
	s.setImage("podinfo", "podinfo:broken")

	ro := s.waitPhase("podinfo", sluicev1.PhaseFailed, storyTimeout)
	if ro.Status.FailedRevision == "" || ro.Status.FailedRevision == ro.Status.StableRevision {
		t.Errorf("failedRevision = %q, stable = %q", ro.Status.FailedRevision, ro.Status.StableRevision)
	}
	primary := s.getDeployment("podinfo-primary")
	if primary.Generation != primaryBefore.Generation || primary.Spec.Template.Spec.Containers[0].Image != "podinfo:1.0" {
		t.Errorf("primary was touched: generation %d -> %d, image %s", primaryBefore.Generation, primary.Generation,
			primary.Spec.Template.Spec.Containers[0].Image)
	}
	s.eventually(5*time.Second, "canary scaled to zero after the rollback", func() error {
		if n := replicas(s.getDeployment("podinfo")); n != 0 {
			return fmt.Errorf("canary replicas = %d", n)
		}
		return nil
	})
	if sel := s.getService("podinfo").Spec.Selector; sel["app"] != "podinfo-primary" {
		t.Errorf("apex Service selects %v after the rollback, want the primary", sel)
	}
	s.waitEvent("podinfo", "ProgressDeadlineExceeded")
	s.expectKStatus("podinfo", status.FailedStatus)

	// The failed revision is not tried again on its own.
	time.Sleep(1500 * time.Millisecond)
	if got := s.getRollout("podinfo").Status.Phase; got != sluicev1.PhaseFailed {
		t.Errorf("phase after a while = %s, want it to stay Failed", got)
	}
}

// hookRecorder is a rollout webhook that records the step of each call.
type hookRecorder struct {
	mu    sync.Mutex
	calls []webhooks.Payload
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p webhooks.Payload
	_ = json.NewDecoder(r.Body).Decode(&p)
	h.mu.Lock()
	h.calls = append(h.calls, p)
	h.mu.Unlock()
}

func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

func TestAControllerRestartedMidRunResumesAtTheSameStep(t *testing.T) {
	s := newStory(t)
	hook := &hookRecorder{}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(4), webhook("load", sluicev1.HookRollout, srv.URL))

	s.setImage("podinfo", "podinfo:2.0")
	var atStop *sluicev1.Rollout
	s.eventually(storyTimeout, "the run reaches its second step", func() error {
		atStop = s.getRollout("podinfo")
		if atStop.Status.CurrentStepIndex < 1 {
			return fmt.Errorf("step %d", atStop.Status.CurrentStepIndex)
		}
		return nil
	})
	s.stopManager()
	atStop = s.getRollout("podinfo")
	callsAtStop := hook.count()

	// Down for longer than a step's hold.
	time.Sleep(1500 * time.Millisecond)
	s.startManager()

	ro := s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if callsAtStop != int(atStop.Status.CurrentStepIndex) {
		t.Errorf("at the stop %d rollout hooks had run for %d passed steps", callsAtStop, atStop.Status.CurrentStepIndex)
	}
	if got := hook.count(); got != 4 {
		t.Errorf("rollout hooks ran %d times over the release, want once per iteration (4): no step repeated or skipped", got)
	}
	if n := countOf(s.eventReasons("podinfo"), "NewRevision"); n != 1 {
		t.Errorf("%d NewRevision events, want 1: the run must not start over", n)
	}
	if ro.Status.StableRevision != atStop.Status.CanaryRevision {
		t.Errorf("promoted %s, want the revision under release at the stop %s", ro.Status.StableRevision, atStop.Status.CanaryRevision)
	}
	s.expectKStatus("podinfo", status.CurrentStatus)
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// The cache drops kubectl's last-applied-configuration from Rollouts
// (StripRollout); the API server's copy must keep it through a release,
// or the user's next `kubectl apply` would no longer prune what they
// removed from the file.
func TestAKubectlAppliedRolloutKeepsItsLastAppliedConfigurationThroughARelease(t *testing.T) {
	s := newStory(t)
	s.deploy("applied", "podinfo:1.0")
	const applied = `{"apiVersion":"sluice.dev/v1alpha1","kind":"Rollout","metadata":{"name":"applied"},"spec":{"targetRef":{"kind":"Deployment","name":"applied"}}}`
	s.initialized("applied", func(ro *sluicev1.Rollout) {
		ro.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: applied, "team": "payments"}
	})
	s.setImage("applied", "podinfo:2.0")
	ro := s.waitPhase("applied", sluicev1.PhaseSucceeded, storyTimeout)
	if got := ro.Annotations[corev1.LastAppliedConfigAnnotation]; got != applied || ro.Annotations["team"] != "payments" {
		t.Errorf("after a release the Rollout's annotations are %v; want kubectl's last-applied-configuration and the user's kept", ro.Annotations)
	}
	// The finalizer is the write to the Rollout that could lose it.
	if !slices.Contains(ro.Finalizers, "sluice.dev/finalizer") {
		t.Errorf("the Rollout's finalizers are %v; the story expects Sluice's", ro.Finalizers)
	}
}
