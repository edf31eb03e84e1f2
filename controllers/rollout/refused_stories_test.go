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
	name := "no-primaries-" + s.ns
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			Validations: []admissionv1.Validation{{Expression: "!object.metadata.name.endsWith('-primary')", Message: message}},
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
	// The API server enforces a new policy a moment later.
	probe := func() *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Name, d.Namespace = "probe-primary", s.ns
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}}
		d.Spec.Template.Labels = map[string]string{"app": "probe"}
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "app", Image: "probe"}}
		return d
	}
	s.eventually(storyTimeout, "the policy enforced", func() error {
		d := probe()
		err := k8sClient.Create(s.ctx, d, client.DryRunAll)
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			return nil
		}
		return fmt.Errorf("a Deployment named probe-primary was not refused: %v", err)
	})
	return binding
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
	rv := s.getRollout("podinfo").ResourceVersion

	time.Sleep(rollout.RefusedRecheck + 3*time.Second)
	if now := s.getRollout("podinfo"); now.ResourceVersion != rv {
		t.Errorf("the Rollout was written while the refusal lasted (resourceVersion %s, was %s): %s", now.ResourceVersion, rv, now.Status.Message)
	}

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
