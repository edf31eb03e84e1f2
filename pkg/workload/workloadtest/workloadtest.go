// Package workloadtest holds the test objects of the workload packages.
package workloadtest

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Target builds a Deployment web in namespace ns (pods app=web, tier=front;
// selector app=web) that uses one ConfigMap or Secret in each way a pod
// template can.
func Target() *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{"team": "a"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "front"}},
				Spec: corev1.PodSpec{
					Volumes: []corev1.Volume{
						{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}}}},
						{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec-vol", Optional: ptr.To(true)}}},
						{Name: "c", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
							{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-proj"}}},
						}}}},
					},
					InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{
						{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec-envfrom"}}},
					}}},
					Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{
						{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm-vol"}, Key: "x"}}},
						{Name: "PLAIN", Value: "1"},
					}}},
				},
			},
		},
	}
}

// DaemonSet builds a DaemonSet web in namespace ns with the pod template and
// selector of Target, that runs on Linux nodes of a pool (its own
// nodeSelector) and on nodes of zone a or b (its own node affinity).
func DaemonSet() *appsv1.DaemonSet {
	d := Target()
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux", "pool": "edge"}
	tmpl.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}}},
		}}},
	}}
	return &appsv1.DaemonSet{
		ObjectMeta: *d.ObjectMeta.DeepCopy(),
		Spec: appsv1.DaemonSetSpec{
			Selector:       d.Spec.Selector.DeepCopy(),
			Template:       tmpl,
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
		},
	}
}
