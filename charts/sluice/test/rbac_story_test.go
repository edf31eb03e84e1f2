package test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// installChartRBAC creates the chart's ServiceAccount and RBAC objects for
// real and returns the ServiceAccount's user name.
func installChartRBAC(t *testing.T, r *rendered) string {
	t.Helper()
	ensureNamespace(t, releaseNS)
	sa := ""
	for _, o := range r.objects {
		switch o.GetKind() {
		case "ServiceAccount":
			sa = o.GetName()
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
		default:
			continue
		}
		if err := admin.Create(context.Background(), o.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	if sa == "" {
		t.Fatalf("the chart rendered no ServiceAccount: %v", r.kinds())
	}
	return fmt.Sprintf("system:serviceaccount:%s:%s", releaseNS, sa)
}

// as returns a config that impersonates user.
func as(user string) *rest.Config {
	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	return cfg
}

func TestTheChartsRBACIsEnoughToInstallAndReleaseARollout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// The defaults: leader election runs under the chart's namespaced Role.
	user := installChartRBAC(t, render(t, ""))
	sa := as(user)

	startManager(t, ctx, sa, "the chart's RBAC", manager.Options{LeaderElection: true, LeaderElectionNS: releaseNS})

	ns := "rbac-story"
	ensureNamespace(t, ns)
	testenv.RunFakeKubelet(ctx, admin, ns, nil)
	deployPodinfo(t, ns, "podinfo:1.0")
	ro := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   sluicev1.ServiceSpec{Port: 9898},
			Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 2}},
			Analysis:  &sluicev1.Analysis{Interval: &metav1.Duration{Duration: time.Second}, Threshold: 2},
		},
	}
	must(t, admin.Create(ctx, ro))

	waitPhase(t, ns, "podinfo", sluicev1.PhaseInitialized)
	expectHealth(t, getRollout(t, ns, "podinfo"), status.CurrentStatus, "Healthy")

	d := &appsv1.Deployment{}
	must(t, admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "podinfo"}, d))
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Template.Spec.Containers[0].Image = "podinfo:2.0"
	must(t, admin.Patch(ctx, d, patch))

	waitPhase(t, ns, "podinfo", sluicev1.PhaseSucceeded)
	expectHealth(t, getRollout(t, ns, "podinfo"), status.CurrentStatus, "Healthy")
	primary := &appsv1.Deployment{}
	must(t, admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "podinfo-primary"}, primary))
	if img := primary.Spec.Template.Spec.Containers[0].Image; img != "podinfo:2.0" {
		t.Errorf("primary image = %s, want podinfo:2.0", img)
	}
	// Events are written with the events.k8s.io API the ClusterRole grants.
	var events eventsv1.EventList
	must(t, admin.List(ctx, &events, client.InNamespace(ns)))
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	for _, want := range []string{"Initialized", "Promoted"} {
		if !slices.Contains(reasons, want) {
			t.Errorf("events %v lack %s: the ServiceAccount could not record it", reasons, want)
		}
	}
}

func TestTheChartGrantsNothingSluiceDoesNotUse(t *testing.T) {
	user := installChartRBAC(t, render(t, ""))
	for _, tc := range []struct {
		what string
		attr authzv1.ResourceAttributes
	}{
		{"delete Deployments", authzv1.ResourceAttributes{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: "shop"}},
		{"read Pods", authzv1.ResourceAttributes{Verb: "list", Resource: "pods", Namespace: "shop"}},
		{"write CRDs", authzv1.ResourceAttributes{Verb: "create", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}},
		{"create Rollouts", authzv1.ResourceAttributes{Verb: "create", Group: "sluice.dev", Resource: "rollouts", Namespace: "shop"}},
		{"list AlertProviders (each is read by name when a Rollout alerts)", authzv1.ResourceAttributes{Verb: "list", Group: "sluice.dev", Resource: "alertproviders", Namespace: "shop"}},
		{"take Leases outside its namespace", authzv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"}},
		{"touch HTTPRoutes when Gateway API is off", authzv1.ResourceAttributes{Verb: "update", Group: "gateway.networking.k8s.io", Resource: "httproutes", Namespace: "shop"}},
		{"touch VirtualServices when Istio is off", authzv1.ResourceAttributes{Verb: "update", Group: "networking.istio.io", Resource: "virtualservices", Namespace: "shop"}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			attr := tc.attr
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNS, "system:authenticated"},
				ResourceAttributes: &attr,
			}}
			must(t, admin.Create(context.Background(), sar))
			if sar.Status.Allowed {
				t.Errorf("the chart's ServiceAccount may %s (%s)", tc.what, sar.Status.Reason)
			}
		})
	}
	// The same through the API, as the ServiceAccount itself.
	c, err := client.New(as(user), client.Options{Scheme: manager.Scheme()})
	must(t, err)
	ns := "rbac-negative"
	ensureNamespace(t, ns)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns}}
	if err := c.Delete(context.Background(), d); !apierrors.IsForbidden(err) {
		t.Errorf("deleting a Deployment as the ServiceAccount: err %v, want Forbidden", err)
	}
	if err := c.List(context.Background(), &corev1.PodList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
		t.Errorf("listing Pods as the ServiceAccount: err %v, want Forbidden", err)
	}
}

// RBAC lets the manager delete ConfigMaps and Secrets (the config copies no
// pod reads any more); the chart's admission policy lets it delete only
// those a Rollout controls, so a manager that asked for another (a bug, or
// a stolen token) is refused by the API server.
func TestTheChartLetsSluiceDeleteOnlyItsOwnConfigCopies(t *testing.T) {
	user := installChartRBAC(t, render(t, ""))
	ctx := context.Background()
	ns := "rbac-delete-copies"
	ensureNamespace(t, ns)
	c, err := client.New(as(user), client.Options{Scheme: manager.Scheme()})
	must(t, err)

	// The policy is in force a moment after it is created: until the API
	// server refuses the delete, the Secret is made again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, StringData: map[string]string{"password": "x"}}
		if err := admin.Create(ctx, theirs); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}})
		if apierrors.IsForbidden(err) {
			t.Logf("deleting someone's Secret as the ServiceAccount: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleting a Secret no Rollout controls as the ServiceAccount: err %v, want Forbidden by the chart's policy", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &corev1.Secret{}); err != nil {
		t.Errorf("Secret db after the refused delete: %v", err)
	}

	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns}, Spec: sluicev1.RolloutSpec{
		TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
		Service:   sluicev1.ServiceSpec{Port: 80},
		Strategy:  sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
	}}
	must(t, admin.Create(ctx, ro))
	for _, kind := range []string{"ConfigMap", "Secret"} {
		var copied client.Object = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "db-primary", Namespace: ns}}
		if kind == "Secret" {
			copied = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-primary", Namespace: ns}}
		}
		copied.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "sluice.dev/v1alpha1", Kind: "Rollout", Name: ro.Name, UID: ro.UID, Controller: ptr.To(true)}})
		must(t, admin.Create(ctx, copied))
		if err := c.Delete(ctx, copied); err != nil {
			t.Errorf("deleting the %s copy db-primary a Rollout controls, as the ServiceAccount: %v", kind, err)
		}
	}
}

// --- helpers -------------------------------------------------------------

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func deployPodinfo(t *testing.T, ns, image string) {
	t.Helper()
	labels := map[string]string{"app": "podinfo"}
	must(t, admin.Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
				}}},
			},
		},
	}))
}

func getRollout(t *testing.T, ns, name string) *sluicev1.Rollout {
	t.Helper()
	ro := &sluicev1.Rollout{}
	must(t, admin.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ro))
	return ro
}

// waitPhase waits up to 30s for the Rollout to reach phase.
func waitPhase(t *testing.T, ns, name string, phase sluicev1.Phase) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ro := getRollout(t, ns, name)
		if ro.Status.Phase == phase {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Rollout %s/%s did not reach %s: phase %q (%s), conditions %+v", ns, name, phase, ro.Status.Phase, ro.Status.Message, ro.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startManager runs Sluice's manager with cfg's identity (the chart's RBAC,
// impersonated) until the test ends. The stop is bounded: a manager whose
// cache never synced (a cluster-wide watch under Roles, say) does not return
// from Start when its context ends, and would hold the suite until go test's
// timeout.
func startManager(t *testing.T, ctx context.Context, cfg *rest.Config, under string, opts manager.Options) {
	t.Helper()
	opts.MetricsAddr, opts.HealthProbeAddr, opts.AllowRestart = "0", "0", true
	mgr, err := manager.New(cfg, opts)
	if err != nil {
		t.Fatalf("the manager under %s: %v", under, err)
	}
	mgrCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mgrCtx); err != nil {
			t.Errorf("the manager under %s: %v", under, err)
		}
	}()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Errorf("the manager under %s did not stop within a minute of its context's end", under)
		}
	})
}
