package rollout_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
)

// denyPrimaries installs an admission policy, as a platform team's
// Kyverno or Gatekeeper rule would, that refuses every Deployment named
// *-primary in the story's namespace; it returns the policy's binding,
// whose deletion lifts it. It returns once the API server enforces it.
func (s *story) denyPrimaries(message string) *admissionv1.ValidatingAdmissionPolicyBinding {
	s.t.Helper()
	return s.denyDeployments("no-primaries", admissionv1.Create, "!object.metadata.name.endsWith('-primary')", message, func() error {
		d := &appsv1.Deployment{}
		d.Name, d.Namespace = "probe-primary", s.ns
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}}
		d.Spec.Template.Labels = map[string]string{"app": "probe"}
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "probe"}}
		return k8sClient.Create(s.ctx, d, client.DryRunAll)
	})
}

// denyScaleUp installs a policy, as a quota or a platform team's rule
// would, that refuses any change of the Deployment name to more than zero
// replicas.
func (s *story) denyScaleUp(name, message string) *admissionv1.ValidatingAdmissionPolicyBinding {
	s.t.Helper()
	return s.denyDeployments("no-scale-up", admissionv1.Update, fmt.Sprintf("object.metadata.name != '%s' || object.spec.replicas == 0", name), message, func() error {
		d := s.getDeployment(name)
		d.Spec.Replicas = ptr.To[int32](1)
		return k8sClient.Update(s.ctx, d, client.DryRunAll)
	})
}

// denyDeployments installs an admission policy refusing the operation op on
// a Deployment of the story's namespace unless the CEL expression holds,
// with message; it returns the policy's binding, whose deletion lifts it.
// It returns once probe, a dry run the policy refuses, is refused: the API
// server enforces a new policy a moment later.
func (s *story) denyDeployments(name string, op admissionv1.OperationType, expression, message string, probe func() error) *admissionv1.ValidatingAdmissionPolicyBinding {
	s.t.Helper()
	name += "-" + s.ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{op},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			Validations: []admissionv1.Validation{{Expression: expression, Message: message}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: s.ns},
			}},
		},
	}
	s.must(k8sClient.Create(s.ctx, policy))
	s.must(k8sClient.Create(s.ctx, binding))
	s.t.Cleanup(func() {
		_ = k8sClient.Delete(s.ctx, binding)
		_ = k8sClient.Delete(s.ctx, policy)
	})
	s.eventually(storyTimeout, "the policy "+name+" enforced", func() error {
		err := probe()
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			return nil
		}
		return fmt.Errorf("the probe was not refused: %v", err)
	})
	return binding
}

// expectNoWriteOverARecheck checks that the Rollout name, stalled on a
// refusal, is not written while it tries again (RefusedRecheck).
func (s *story) expectNoWriteOverARecheck(name string) {
	s.t.Helper()
	rv := s.getRollout(name).ResourceVersion
	time.Sleep(rollout.RefusedRecheck + 3*time.Second)
	if now := s.getRollout(name); now.ResourceVersion != rv {
		s.t.Errorf("the Rollout was written while the refusal lasted (resourceVersion %s, was %s): %s", now.ResourceVersion, rv, now.Status.Message)
	}
}

// A write the API server refuses for a reason that does not pass by itself
// (an admission policy, a quota, RBAC) stops the Rollout where the user
// sees why: Stalled with reason RequestRefused and the API server's words
// in its status, one Warning event, kstatus Failed (so Flux and Argo CD
// report it instead of waiting). It tries again every 30s, without the
// backoff of an error, and carries on once the write is accepted. Before,
// the Rollout sat in Initializing with no condition, and ReconcileError
// events came further and further apart.
func TestAWriteRefusedByAnAdmissionPolicyStallsTheRolloutSayingWhy(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	binding := s.denyPrimaries("team policy: no Deployment may be named *-primary")
	s.rollout("podinfo")

	ro := s.waitStalled("podinfo", "RequestRefused")
	for _, want := range []string{"creating primary Deployment podinfo-primary", "team policy: no Deployment may be named *-primary"} {
		if !strings.Contains(ro.Status.Message, want) {
			t.Errorf("the Stalled message %q does not say %q", ro.Status.Message, want)
		}
	}
	s.waitEvent("podinfo", "RequestRefused")
	s.expectKStatus("podinfo", status.FailedStatus)
	if n := replicas(s.getDeployment("podinfo")); n != 2 {
		t.Errorf("the target runs %d replicas while stalled, want its 2 serving", n)
	}

	// Tried again while refused, it writes nothing more.
	s.expectNoWriteOverARecheck("podinfo")

	s.must(k8sClient.Delete(s.ctx, binding))
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, rollout.RefusedRecheck+storyTimeout)
	s.expectKStatus("podinfo", status.CurrentStatus)
	if got := s.eventReasons("podinfo"); slices.Contains(got, "ReconcileError") {
		t.Errorf("events %v: the refusal was also told as a ReconcileError", got)
	}
	if n := len(s.eventNotes("podinfo", "RequestRefused")); n != 1 {
		t.Errorf("%d RequestRefused events, want 1: told once, when it first stalls", n)
	}
}

// Deleting a Rollout hands traffic back to its target, scaled back up
// first. When the API server refuses that (a quota, a policy), the
// deletion waits with the primary serving, and says why: Stalled with
// reason RequestRefused and the API server's words, one Warning event,
// tried again every 30s without writing anything while refused. Before, it
// sat in Terminating saying nothing, retried with an error's backoff.
func TestAWriteRefusedWhileDeletingHoldsTheDeletionSayingWhy(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo")
	binding := s.denyScaleUp("podinfo", "team quota: podinfo may not be scaled up")
	s.must(k8sClient.Delete(s.ctx, s.getRollout("podinfo")))

	ro := s.waitStalled("podinfo", "RequestRefused")
	if ro.Status.Phase != sluicev1.PhaseTerminating {
		t.Errorf("phase %s while the deletion waits, want Terminating", ro.Status.Phase)
	}
	for _, want := range []string{"scaling Deployment podinfo to 2", "team quota: podinfo may not be scaled up"} {
		if !strings.Contains(ro.Status.Message, want) {
			t.Errorf("the Stalled message %q does not say %q", ro.Status.Message, want)
		}
	}
	s.waitEvent("podinfo", "RequestRefused")
	if err := s.apexSelects("podinfo", primaryPods); err != nil {
		t.Errorf("while the deletion waits: %v", err)
	}
	if n := replicas(s.getDeployment("podinfo-primary")); n != 2 {
		t.Errorf("the primary runs %d replicas while the deletion waits, want its 2 serving", n)
	}

	s.expectNoWriteOverARecheck("podinfo")
	if n := len(s.eventNotes("podinfo", "RequestRefused")); n != 1 {
		t.Errorf("%d RequestRefused events, want 1: told once, when it first stalls", n)
	}

	s.must(k8sClient.Delete(s.ctx, binding))
	s.eventually(rollout.RefusedRecheck+storyTimeout, "the Rollout gone once the scale-up is accepted", func() error {
		return s.gone("podinfo")
	})
	if err := s.apexSelects("podinfo", targetPods); err != nil {
		t.Errorf("after the deletion: %v", err)
	}
}

// A Rollout already stalled for another reason (a rollback's) keeps that
// reason when the API server refuses one of its writes: the refusal is
// told in a Warning event. Told once, not again at each recheck: before,
// every 30 s recheck told it again, a write to the API server each time
// and a repeat in `kubectl describe` for as long as it lasted.
func TestARefusalWhileStalledForAnotherReasonIsToldOnce(t *testing.T) {
	s := newStory(t)
	s.deploy("podinfo", "podinfo:1.0")
	s.initialized("podinfo", iterations(100))
	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseProgressing, storyTimeout)
	s.ask("podinfo", sluicev1.ActionAbort, "sre")
	s.waitStalled("podinfo", "Aborted")

	// A quota caps the primary at 2 replicas; its owner scales the parked
	// target to 4, which Sluice passes on to the primary.
	s.denyDeployments("primary-cap", admissionv1.Update,
		"object.metadata.name != 'podinfo-primary' || object.spec.replicas <= 2", "team quota: podinfo-primary runs at most 2 replicas",
		func() error {
			d := s.getDeployment("podinfo-primary")
			d.Spec.Replicas = ptr.To[int32](3)
			return k8sClient.Update(s.ctx, d, client.DryRunAll)
		})
	s.scale("podinfo", 4)
	s.waitEvent("podinfo", "RequestRefused")
	if note := s.eventNote("podinfo", "RequestRefused", ""); !strings.Contains(note, "team quota: podinfo-primary runs at most 2 replicas") {
		t.Errorf("the RequestRefused event %q does not give the API server's words", note)
	}
	if c := meta.FindStatusCondition(s.getRollout("podinfo").Status.Conditions, sluicev1.ConditionStalled); c == nil || c.Reason != "Aborted" {
		t.Errorf("the rollback's Stalled reason was replaced: %+v", c)
	}

	// Two rechecks later, still refused, still told once.
	time.Sleep(2*rollout.RefusedRecheck + 3*time.Second)
	if n := s.eventCount("podinfo", "RequestRefused"); n != 1 {
		t.Errorf("the refusal was told %d times over two rechecks, want once", n)
	}
	if n := replicas(s.getDeployment("podinfo-primary")); n != 2 {
		t.Errorf("the primary runs %d replicas, want its 2 serving", n)
	}
}
