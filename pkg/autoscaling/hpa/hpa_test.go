package hpa_test

import (
	"encoding/json"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/autoscaling"
	"github.com/sluice-dev/sluice/pkg/autoscaling/hpa"
)

type hpaOpt func(*autoscalingv2.HorizontalPodAutoscaler)

func newHPA(opts ...hpaOpt) *autoscalingv2.HorizontalPodAutoscaler {
	h := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: "shop"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			MinReplicas:    ptr.To[int32](2),
			MaxReplicas:    10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)},
			}}},
		},
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

func minReplicas(n *int32) hpaOpt {
	return func(h *autoscalingv2.HorizontalPodAutoscaler) { h.Spec.MinReplicas = n }
}

func replicas(minR, maxR *int32) *sluicev1.ScalerReplicas {
	return &sluicev1.ScalerReplicas{MinReplicas: minR, MaxReplicas: maxR}
}

func TestReadTellsWhatTheHPAScalesAndItsBounds(t *testing.T) {
	tests := []struct {
		name    string
		hpa     *autoscalingv2.HorizontalPodAutoscaler
		min     int32
		wantErr string
	}{
		{"bounds as set", newHPA(), 2, ""},
		{"minReplicas unset is 1", newHPA(minReplicas(nil)), 1, ""},
		{"minReplicas 0 would wake the parked target", newHPA(minReplicas(ptr.To[int32](0))), 0, "minReplicas 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := hpa.Kind{}.Read(tt.hpa)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if src.ScaleTarget != (autoscaling.ScaleTarget{Kind: "Deployment", Name: "podinfo"}) || src.MinReplicas != tt.min || src.MaxReplicas != 10 {
				t.Errorf("read %+v, want Deployment podinfo, min %d, max 10", src, tt.min)
			}
		})
	}
}

func TestBuildScalesThePrimaryWithItsOwnBounds(t *testing.T) {
	tests := []struct {
		name     string
		replicas *sluicev1.ScalerReplicas
		min, max int32
		wantErr  string
	}{
		{"the user's bounds", nil, 2, 10, ""},
		{"both replaced", replicas(ptr.To[int32](4), ptr.To[int32](40)), 4, 40, ""},
		{"only the minimum replaced", replicas(ptr.To[int32](3), nil), 3, 10, ""},
		{"only the maximum replaced", replicas(nil, ptr.To[int32](5)), 2, 5, ""},
		{"a minimum above the user's maximum", replicas(ptr.To[int32](12), nil), 0, 0, "minReplicas 12 above maxReplicas 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := newHPA()
			spec, _ := json.Marshal(user.Spec)
			obj, err := hpa.Kind{}.Build(spec, autoscaling.Primary{Name: "podinfo-primary", Namespace: "shop", Deployment: "podinfo-primary", Replicas: tt.replicas})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := obj.(*autoscalingv2.HorizontalPodAutoscaler)
			if h.Name != "podinfo-primary" || h.Namespace != "shop" {
				t.Errorf("copy named %s/%s", h.Namespace, h.Name)
			}
			want := autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo-primary"}
			if h.Spec.ScaleTargetRef != want {
				t.Errorf("copy scales %+v, want the primary Deployment", h.Spec.ScaleTargetRef)
			}
			if *h.Spec.MinReplicas != tt.min || h.Spec.MaxReplicas != tt.max {
				t.Errorf("copy bounds %d..%d, want %d..%d", *h.Spec.MinReplicas, h.Spec.MaxReplicas, tt.min, tt.max)
			}
			if len(h.Spec.Metrics) != 1 || *h.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
				t.Errorf("copy metrics %+v, want the user's", h.Spec.Metrics)
			}
			if *user.Spec.MinReplicas != 2 || user.Spec.ScaleTargetRef.Name != "podinfo" {
				t.Errorf("the user's HPA was changed: %+v", user.Spec)
			}
		})
	}
}

func TestAnHPANeedsNoPauseOnAParkedTarget(t *testing.T) {
	if key, _ := (hpa.Kind{}).PauseAnnotation(); key != "" {
		t.Errorf("pause annotation %q: the HPA controller skips a target at zero replicas by itself", key)
	}
}
