package keda_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/autoscaling/keda"
)

const userSpec = `
scaleTargetRef: {name: podinfo, envSourceContainerName: app}
minReplicaCount: 1
maxReplicaCount: 20
triggers:
- type: prometheus
  name: rps
  metadata: {serverAddress: "http://prometheus:9090", query: 'sum(rate(http_requests_total{app="podinfo"}[1m]))', threshold: "100"}
- type: cpu
  name: cpu
  metricType: Utilization
  metadata: {value: "80"}
- type: prometheus
  metadata: {serverAddress: "http://prometheus:9090", query: "unnamed"}
`

func scaledObject(t *testing.T, spec string) *unstructured.Unstructured {
	t.Helper()
	s := map[string]any{}
	if err := yaml.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": s}}
	u.SetGroupVersionKind(keda.Kind{}.GroupVersionKind())
	u.SetName("podinfo")
	u.SetNamespace("shop")
	return u
}

func specJSON(t *testing.T, spec string) []byte {
	t.Helper()
	src, err := keda.Kind{}.Read(scaledObject(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	return src.Spec
}

func TestReadAppliesKEDADefaults(t *testing.T) {
	tests := []struct {
		name, spec string
		want       autoscaling.Source
	}{
		{"bounds and kind as set", userSpec, autoscaling.Source{ScaleTarget: autoscaling.ScaleTarget{Kind: "Deployment", Name: "podinfo"}, MinReplicas: 1, MaxReplicas: 20}},
		{"unset bounds are 0 and 100", "scaleTargetRef: {name: podinfo}\ntriggers: [{type: cpu, metadata: {value: '80'}}]",
			autoscaling.Source{ScaleTarget: autoscaling.ScaleTarget{Kind: "Deployment", Name: "podinfo"}, MinReplicas: 0, MaxReplicas: 100}},
		{"another kind of target", "scaleTargetRef: {name: db, kind: StatefulSet, apiVersion: apps/v1}\ntriggers: [{type: cpu, metadata: {value: '80'}}]",
			autoscaling.Source{ScaleTarget: autoscaling.ScaleTarget{Kind: "StatefulSet", Name: "db"}, MinReplicas: 0, MaxReplicas: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keda.Kind{}.Read(scaledObject(t, tt.spec))
			if err != nil {
				t.Fatal(err)
			}
			if got.ScaleTarget != tt.want.ScaleTarget || got.MinReplicas != tt.want.MinReplicas || got.MaxReplicas != tt.want.MaxReplicas {
				t.Errorf("read %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBuildScalesThePrimaryAndRewritesTheNamedQueries(t *testing.T) {
	primaryQuery := `sum(rate(http_requests_total{app="podinfo-primary"}[1m]))`
	tests := []struct {
		name     string
		spec     string
		replicas *sluicev1.ScalerReplicas
		queries  map[string]string
		min, max int64
		query    string // of the trigger rps
		hpaName  string
		wantErr  string
	}{
		{name: "the user's spec on the primary", spec: userSpec, min: 1, max: 20, query: `sum(rate(http_requests_total{app="podinfo"}[1m]))`},
		{name: "a named trigger's query replaced", spec: userSpec, queries: map[string]string{"rps": primaryQuery}, min: 1, max: 20, query: primaryQuery},
		{name: "bounds replaced", spec: userSpec, replicas: &sluicev1.ScalerReplicas{MinReplicas: ptr.To[int32](3), MaxReplicas: ptr.To[int32](30)}, min: 3, max: 30,
			query: `sum(rate(http_requests_total{app="podinfo"}[1m]))`},
		{name: "a minimum above KEDA's default maximum", spec: "scaleTargetRef: {name: podinfo}\ntriggers: [{type: cpu, metadata: {value: '80'}}]",
			replicas: &sluicev1.ScalerReplicas{MinReplicas: ptr.To[int32](101)}, wantErr: "minReplicas 101 above maxReplicas 100"},
		{name: "a query for a trigger that does not exist", spec: userSpec, queries: map[string]string{"latency": "x"}, wantErr: "triggers [latency] that the ScaledObject does not have (its named triggers: [rps cpu])"},
		{name: "a query for a trigger without one", spec: userSpec, queries: map[string]string{"cpu": "x"}, wantErr: `trigger "cpu", which has no query metadata (type cpu)`},
		{name: "KEDA's HPA named by the user gets its own name", spec: userSpec + "advanced: {horizontalPodAutoscalerConfig: {name: podinfo-hpa}}", min: 1, max: 20,
			query: `sum(rate(http_requests_total{app="podinfo"}[1m]))`, hpaName: "podinfo-hpa-primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := keda.Kind{}.Build(specJSON(t, tt.spec), autoscaling.Primary{
				Name: "podinfo-primary", Namespace: "shop", Deployment: "podinfo-primary", Replicas: tt.replicas, Queries: tt.queries,
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := obj.(*unstructured.Unstructured)
			if u.GetName() != "podinfo-primary" || u.GetNamespace() != "shop" || u.GetKind() != "ScaledObject" || u.GetAPIVersion() != "keda.sh/v1alpha1" {
				t.Errorf("copy is %s %s/%s (%s)", u.GetKind(), u.GetNamespace(), u.GetName(), u.GetAPIVersion())
			}
			ref, _, _ := unstructured.NestedStringMap(u.Object, "spec", "scaleTargetRef")
			if ref["name"] != "podinfo-primary" || ref["kind"] != "Deployment" || ref["apiVersion"] != "apps/v1" || ref["envSourceContainerName"] != "app" {
				t.Errorf("copy scales %v, want the primary Deployment (envSourceContainerName kept)", ref)
			}
			src, err := keda.Kind{}.Read(u)
			if err != nil {
				t.Fatal(err)
			}
			if int64(src.MinReplicas) != tt.min || int64(src.MaxReplicas) != tt.max {
				t.Errorf("copy bounds %d..%d, want %d..%d", src.MinReplicas, src.MaxReplicas, tt.min, tt.max)
			}
			triggers, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
			if len(triggers) != 3 {
				t.Fatalf("copy has %d triggers, want the user's 3", len(triggers))
			}
			if q, _, _ := unstructured.NestedString(triggers[0].(map[string]any), "metadata", "query"); q != tt.query {
				t.Errorf("trigger rps queries %q, want %q", q, tt.query)
			}
			if q, _, _ := unstructured.NestedString(triggers[2].(map[string]any), "metadata", "query"); q != "unnamed" {
				t.Errorf("an unnamed trigger's query became %q", q)
			}
			if name, _, _ := unstructured.NestedString(u.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "name"); name != tt.hpaName {
				t.Errorf("KEDA's HPA for the copy is named %q, want %q", name, tt.hpaName)
			}
		})
	}
}

func TestTheUsersScaledObjectIsPausedAtZeroReplicas(t *testing.T) {
	key, val := keda.Kind{}.PauseAnnotation()
	if key != "autoscaling.keda.sh/paused-replicas" || val != "0" {
		t.Errorf("pause annotation %s=%q, want autoscaling.keda.sh/paused-replicas=\"0\"", key, val)
	}
}
