package autoscaling_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/autoscaling/hpa"
	"github.com/sluice-dev/sluice/pkg/autoscaling/keda"
)

// These tests run the reads and writes of an Autoscaler against a real API
// server with KEDA's own ScaledObject CRD installed; the manager's stories
// in controllers/rollout run them inside the reconciler.

var (
	k8sClient client.Client
	set       *autoscaling.Set
	nsCounter atomic.Int32
)

func TestMain(m *testing.M) {
	crd, err := testenv.KEDACRDPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, "KEDA's ScaledObject CRD is needed:", err)
		os.Exit(1)
	}
	env, err := testenv.Start(crd)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := sluicev1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	k8sClient, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	set = autoscaling.New(k8sClient, k8sClient, k8sClient.RESTMapper(), hpa.Kind{}, keda.Kind{}, widgets{keda.Kind{}})
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// fixture is a namespace with a Rollout whose target is podinfo.
type fixture struct {
	t   *testing.T
	ctx context.Context
	ro  *sluicev1.Rollout
}

func newFixture(t *testing.T, ref sluicev1.AutoscalerRef) *fixture {
	t.Helper()
	ctx := context.Background()
	ns := fmt.Sprintf("autoscaling-%d", nsCounter.Add(1))
	f := &fixture{t: t, ctx: ctx}
	f.must(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	f.ro = &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: sluicev1.RolloutSpec{
			TargetRef:     sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			AutoscalerRef: &ref,
			Service:       sluicev1.ServiceSpec{Port: 80},
			Strategy:      sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{}},
		},
	}
	f.must(k8sClient.Create(ctx, f.ro))
	return f
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) target() autoscaling.Target {
	return autoscaling.Target{Rollout: f.ro, Deployment: "podinfo", Primary: "podinfo-primary",
		Labels: map[string]string{"sluice.dev/rollout": "podinfo", "app.kubernetes.io/managed-by": "sluice"}}
}

func (f *fixture) autoscaler() *autoscaling.Autoscaler {
	f.t.Helper()
	a, err := set.For(f.ro.Spec.AutoscalerRef)
	f.must(err)
	return a
}

func (f *fixture) observe() *autoscaling.State {
	f.t.Helper()
	s, err := f.autoscaler().Observe(f.ctx, f.target())
	f.must(err)
	return s
}

func (f *fixture) sync(rel autoscaling.Release) {
	f.t.Helper()
	f.must(f.autoscaler().Sync(f.ctx, f.target(), f.observe(), rel))
}

var hpaRef = sluicev1.AutoscalerRef{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "podinfo"}

func (f *fixture) createHPA(name, target string, maxReplicas int32) {
	f.t.Helper()
	f.must(k8sClient.Create(f.ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ro.Namespace},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: maxReplicas,
		},
	}))
}

func (f *fixture) hpa(name string) *autoscalingv2.HorizontalPodAutoscaler {
	f.t.Helper()
	h := &autoscalingv2.HorizontalPodAutoscaler{}
	f.must(k8sClient.Get(f.ctx, client.ObjectKey{Namespace: f.ro.Namespace, Name: name}, h))
	return h
}

func (f *fixture) setMaxReplicas(name string, n int32) {
	f.t.Helper()
	h := f.hpa(name)
	h.Spec.MaxReplicas = n
	f.must(k8sClient.Update(f.ctx, h))
}

func TestTheCopyTakesTheUsersSpecOnlyWhenARevisionIsReleased(t *testing.T) {
	f := newFixture(t, hpaRef)
	f.createHPA("podinfo", "podinfo", 10)

	f.sync(autoscaling.Release{Revision: "r1"})
	cp := f.hpa("podinfo-primary")
	if cp.Spec.ScaleTargetRef.Name != "podinfo-primary" || cp.Spec.MaxReplicas != 10 || *cp.Spec.MinReplicas != 2 {
		t.Fatalf("copy scales %s within %d..%d, want podinfo-primary within 2..10", cp.Spec.ScaleTargetRef.Name, *cp.Spec.MinReplicas, cp.Spec.MaxReplicas)
	}
	if !metav1.IsControlledBy(cp, f.ro) || cp.Labels["sluice.dev/rollout"] != "podinfo" || cp.Labels["app.kubernetes.io/managed-by"] != "sluice" {
		t.Errorf("copy owners %v, labels %v: want the Rollout as controller and Sluice's labels", cp.OwnerReferences, cp.Labels)
	}

	f.setMaxReplicas("podinfo", 20)
	f.sync(autoscaling.Release{})
	if n := f.hpa("podinfo-primary").Spec.MaxReplicas; n != 10 {
		t.Errorf("copy maxReplicas %d before a release, want the released 10", n)
	}

	f.sync(autoscaling.Release{Revision: "r2", Stable: "r1"})
	if n := f.hpa("podinfo-primary").Spec.MaxReplicas; n != 20 {
		t.Errorf("copy maxReplicas %d after the release of r2, want the user's 20", n)
	}

	// An abort during the promotion of r2 puts r1's policy back.
	a := f.autoscaler()
	f.must(a.Restore(f.ctx, f.target(), f.observe(), "r1"))
	if n := f.hpa("podinfo-primary").Spec.MaxReplicas; n != 10 {
		t.Errorf("copy maxReplicas %d after restoring r1, want r1's 10", n)
	}
}

func TestSluicesPartOfTheCopyIsKeptInSyncAtOnce(t *testing.T) {
	f := newFixture(t, hpaRef)
	f.createHPA("podinfo", "podinfo", 10)
	f.sync(autoscaling.Release{Revision: "r1"})

	f.ro.Spec.AutoscalerRef.PrimaryScalerReplicas = &sluicev1.ScalerReplicas{MinReplicas: ptr.To[int32](4)}
	f.sync(autoscaling.Release{})
	if cp := f.hpa("podinfo-primary"); *cp.Spec.MinReplicas != 4 || cp.Spec.MaxReplicas != 10 {
		t.Errorf("copy bounds %d..%d, want the Rollout's minimum 4 and the released maximum 10", *cp.Spec.MinReplicas, cp.Spec.MaxReplicas)
	}

	cp := f.hpa("podinfo-primary")
	cp.Spec.ScaleTargetRef.Name = "podinfo"
	f.must(k8sClient.Update(f.ctx, cp))
	f.sync(autoscaling.Release{})
	if name := f.hpa("podinfo-primary").Spec.ScaleTargetRef.Name; name != "podinfo-primary" {
		t.Errorf("copy scales %s after an edit, want it back on podinfo-primary", name)
	}

	before := f.hpa("podinfo-primary").ResourceVersion
	f.sync(autoscaling.Release{})
	if after := f.hpa("podinfo-primary").ResourceVersion; after != before {
		t.Errorf("a copy in sync was written again (resourceVersion %s -> %s)", before, after)
	}
}

func TestObserveStallsOnWhatOnlyTheUserCanFix(t *testing.T) {
	tests := []struct {
		name   string
		ref    sluicev1.AutoscalerRef
		setup  func(f *fixture)
		reason string
	}{
		{"a missing autoscaler", hpaRef, func(*fixture) {}, autoscaling.ReasonNotFound},
		{"an HPA on another Deployment", hpaRef, func(f *fixture) { f.createHPA("podinfo", "backend", 10) }, autoscaling.ReasonInvalid},
		{"a copy's name taken by someone else's HPA", hpaRef, func(f *fixture) {
			f.createHPA("podinfo", "podinfo", 10)
			f.createHPA("podinfo-primary", "podinfo-primary", 10)
		}, autoscaling.ReasonConflict},
		{"a query for a trigger the ScaledObject lacks", sluicev1.AutoscalerRef{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "podinfo",
			PrimaryScalerQueries: map[string]string{"latency": "x"}}, func(f *fixture) { f.createScaledObject() }, autoscaling.ReasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.ref)
			tt.setup(f)
			_, err := f.autoscaler().Observe(f.ctx, f.target())
			var stalled *autoscaling.StalledError
			if !errors.As(err, &stalled) || stalled.Reason != tt.reason {
				t.Fatalf("err = %v, want a stall with reason %s", err, tt.reason)
			}
			t.Log(stalled.Message)
		})
	}
}

var kedaRef = sluicev1.AutoscalerRef{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "podinfo",
	PrimaryScalerQueries: map[string]string{"rps": `sum(rate(http_requests_total{app="podinfo-primary"}[1m]))`}}

func (f *fixture) createScaledObject() {
	f.t.Helper()
	spec := map[string]any{}
	f.must(yaml.Unmarshal([]byte(`
scaleTargetRef: {name: podinfo}
minReplicaCount: 2
maxReplicaCount: 8
triggers:
- {type: prometheus, name: rps, metadata: {serverAddress: "http://prometheus:9090", query: 'sum(rate(http_requests_total{app="podinfo"}[1m]))', threshold: "100"}}
`), &spec))
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(keda.Kind{}.GroupVersionKind())
	u.SetName("podinfo")
	u.SetNamespace(f.ro.Namespace)
	f.must(k8sClient.Create(f.ctx, u))
}

func (f *fixture) scaledObject(name string) *unstructured.Unstructured {
	f.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(keda.Kind{}.GroupVersionKind())
	f.must(k8sClient.Get(f.ctx, client.ObjectKey{Namespace: f.ro.Namespace, Name: name}, u))
	return u
}

func TestAScaledObjectIsCopiedWithThePrimarysQueryAndPausedOnlyBySluice(t *testing.T) {
	f := newFixture(t, kedaRef)
	f.createScaledObject()
	f.sync(autoscaling.Release{Revision: "r1"})

	cp := f.scaledObject("podinfo-primary")
	if name, _, _ := unstructured.NestedString(cp.Object, "spec", "scaleTargetRef", "name"); name != "podinfo-primary" {
		t.Errorf("copy scales %s, want podinfo-primary", name)
	}
	triggers, _, _ := unstructured.NestedSlice(cp.Object, "spec", "triggers")
	if q, _, _ := unstructured.NestedString(triggers[0].(map[string]any), "metadata", "query"); q != kedaRef.PrimaryScalerQueries["rps"] {
		t.Errorf("copy's rps query %q, want the primary's", q)
	}
	if !metav1.IsControlledBy(cp, f.ro) {
		t.Errorf("copy not controlled by the Rollout: %v", cp.GetOwnerReferences())
	}

	a := f.autoscaler()
	s := f.observe()
	f.must(a.Pause(f.ctx, s, true))
	if v := f.scaledObject("podinfo").GetAnnotations()[keda.PausedReplicasAnnotation]; v != "0" {
		t.Errorf("paused-replicas %q on the user's ScaledObject, want \"0\"", v)
	}
	if !f.observe().Paused {
		t.Errorf("Observe does not see Sluice's pause")
	}
	f.must(a.Pause(f.ctx, f.observe(), false))
	if v, ok := f.scaledObject("podinfo").GetAnnotations()[keda.PausedReplicasAnnotation]; ok {
		t.Errorf("paused-replicas %q still on the user's ScaledObject after resuming", v)
	}
	if _, ok := f.scaledObject("podinfo-primary").GetAnnotations()[keda.PausedReplicasAnnotation]; ok {
		t.Errorf("the primary's copy was paused")
	}

	// A pause the user set at another count is theirs.
	so := f.scaledObject("podinfo")
	so.SetAnnotations(map[string]string{keda.PausedReplicasAnnotation: "3"})
	f.must(k8sClient.Update(f.ctx, so))
	f.must(a.Resume(f.ctx, f.target()))
	if v := f.scaledObject("podinfo").GetAnnotations()[keda.PausedReplicasAnnotation]; v != "3" {
		t.Errorf("the user's paused-replicas became %q, want their 3", v)
	}
}

// widgets is a kind whose CRD is not installed.
type widgets struct{ base autoscaling.Kind }

func (widgets) Kind() string { return "Widget" }
func (widgets) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
}
func (widgets) CRD() string                                        { return "widgets.example.com" }
func (w widgets) New() client.Object                               { return w.base.New() }
func (w widgets) Read(o client.Object) (autoscaling.Source, error) { return w.base.Read(o) }
func (w widgets) Build(spec []byte, p autoscaling.Primary) (client.Object, error) {
	return w.base.Build(spec, p)
}
func (w widgets) PauseAnnotation() (string, string) { return w.base.PauseAnnotation() }

func TestAKindWhoseCRDIsNotInstalledStalls(t *testing.T) {
	_, err := set.For(&sluicev1.AutoscalerRef{APIVersion: "example.com/v1", Kind: "Widget", Name: "w"})
	var stalled *autoscaling.StalledError
	if !errors.As(err, &stalled) || stalled.Reason != autoscaling.ReasonUnavailable {
		t.Fatalf("err = %v, want a stall with reason %s", err, autoscaling.ReasonUnavailable)
	}
	if !set.IsCRD("scaledobjects.keda.sh") || set.IsCRD("deployments.apps") {
		t.Errorf("IsCRD does not tell KEDA's CRD from others")
	}
}
