package test

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/pkg/traffic"
)

// TestATenantsSluiceReleasesInItsNamespaceAndIsForbiddenElsewhere: the
// chart's RBAC rendered with watchNamespaces [team-a] (a release of its own,
// so that no other test's ClusterRoleBinding names its ServiceAccount) runs
// the real manager with --watch-namespaces team-a: a Rollout in team-a is
// released, while the ServiceAccount is Forbidden in team-b and the Rollout
// there is never touched.
func TestATenantsSluiceReleasesInItsNamespaceAndIsForbiddenElsewhere(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	teamA, teamB := "team-a", "team-b"
	ensureNamespace(t, teamA)
	ensureNamespace(t, teamB)
	user := installChartRBAC(t, render(t, "fullnameOverride: tenant-a\nwatchNamespaces: [team-a]"))

	// team-b's Rollout is there before the manager starts.
	deployPodinfo(t, teamB, "podinfo:1.0")
	other := blueGreenRollout(teamB)
	must(t, admin.Create(ctx, other))

	startManager(t, ctx, as(user), "a tenant's RBAC", manager.Options{LeaderElection: true, LeaderElectionNS: releaseNS, WatchNamespaces: []string{teamA}})

	testenv.RunFakeKubelet(ctx, admin, teamA, nil)
	deployPodinfo(t, teamA, "podinfo:1.0")
	must(t, admin.Create(ctx, blueGreenRollout(teamA)))
	waitPhase(t, teamA, "podinfo", sluicev1.PhaseInitialized)
	d := &appsv1.Deployment{}
	must(t, admin.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "podinfo"}, d))
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Template.Spec.Containers[0].Image = "podinfo:2.0"
	must(t, admin.Patch(ctx, d, patch))
	waitPhase(t, teamA, "podinfo", sluicev1.PhaseSucceeded)

	// Forbidden outside team-a, asked of the API server both ways; CRDs
	// are read cluster-wide, never written.
	for _, tc := range []struct {
		what    string
		attr    authzv1.ResourceAttributes
		allowed bool
	}{
		{"get Deployments in team-a", authzv1.ResourceAttributes{Verb: "get", Group: "apps", Resource: "deployments", Namespace: teamA}, true},
		{"list CRDs", authzv1.ResourceAttributes{Verb: "list", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}, true},
		{"get Deployments in team-b", authzv1.ResourceAttributes{Verb: "get", Group: "apps", Resource: "deployments", Namespace: teamB}, false},
		{"update Rollouts in team-b", authzv1.ResourceAttributes{Verb: "update", Group: "sluice.dev", Resource: "rollouts", Namespace: teamB}, false},
		{"list Secrets in team-b", authzv1.ResourceAttributes{Verb: "list", Resource: "secrets", Namespace: teamB}, false},
		{"list Rollouts in every namespace", authzv1.ResourceAttributes{Verb: "list", Group: "sluice.dev", Resource: "rollouts"}, false},
		{"list Secrets in every namespace", authzv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{"write CRDs", authzv1.ResourceAttributes{Verb: "update", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}, false},
	} {
		attr := tc.attr
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"},
			ResourceAttributes: &attr,
		}}
		must(t, admin.Create(ctx, sar))
		if sar.Status.Allowed != tc.allowed {
			t.Errorf("the tenant's ServiceAccount may %s: %v, want %v (%s)", tc.what, sar.Status.Allowed, tc.allowed, sar.Status.Reason)
		}
	}
	sa, err := client.New(as(user), client.Options{Scheme: manager.Scheme()})
	must(t, err)
	if err := sa.Get(ctx, client.ObjectKey{Namespace: teamB, Name: "podinfo"}, &appsv1.Deployment{}); !apierrors.IsForbidden(err) {
		t.Errorf("getting team-b's Deployment as the tenant's ServiceAccount: err %v, want Forbidden", err)
	}
	if err := sa.Get(ctx, client.ObjectKey{Namespace: teamA, Name: "podinfo"}, &appsv1.Deployment{}); err != nil {
		t.Errorf("getting team-a's Deployment as the tenant's ServiceAccount: %v", err)
	}

	// team-b's Rollout has not been touched, though it was there first and
	// team-a's has gone through a whole release: no finalizer, no status,
	// no primary, no Service of Sluice's.
	got := getRollout(t, teamB, "podinfo")
	if len(got.Finalizers) > 0 || got.Status.Phase != "" || got.Status.ObservedGeneration != 0 || len(got.Status.Conditions) > 0 {
		t.Errorf("team-b's Rollout was touched: finalizers %v, status %+v", got.Finalizers, got.Status)
	}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: teamB, Name: "podinfo-primary"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("team-b's primary Deployment: err %v, want NotFound", err)
	}
	var svcs corev1.ServiceList
	must(t, admin.List(ctx, &svcs, client.InNamespace(teamB), client.MatchingLabels{traffic.ManagedByLabel: traffic.ManagedByValue}))
	if len(svcs.Items) > 0 {
		t.Errorf("Sluice created %d Services in team-b", len(svcs.Items))
	}
}

// blueGreenRollout is the podinfo Rollout of the RBAC stories, in ns.
func blueGreenRollout(ns string) *sluicev1.Rollout {
	return &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   sluicev1.ServiceSpec{Port: 9898},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}},
			Analysis:  &sluicev1.Analysis{Interval: &metav1.Duration{Duration: time.Second}, Threshold: 2},
		},
	}
}
