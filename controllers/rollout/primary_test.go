package rollout

import (
	"maps"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// target builds a Deployment that uses one ConfigMap or Secret in each way a
// pod template can.
func target() *appsv1.Deployment {
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

func TestConfigRefsFindsEveryWayAPodTemplateUsesConfiguration(t *testing.T) {
	got := map[string]bool{}
	for _, r := range configRefs(&target().Spec.Template.Spec) {
		got[r.key()] = r.Optional
	}
	want := map[string]bool{"configmap/cm-vol": false, "secret/sec-vol": true, "configmap/cm-proj": false, "secret/sec-envfrom": false}
	if !maps.Equal(got, want) {
		t.Errorf("configRefs = %v, want %v", got, want)
	}
}

func TestRevisionChangesWithTheTemplateAndWithConfigContentOnly(t *testing.T) {
	d := target()
	configs := map[string]string{"configmap/cm-vol": "aaa"}
	base, _ := revision(&d.Spec.Template, configs)
	again, _ := revision(&target().Spec.Template, map[string]string{"configmap/cm-vol": "aaa"})
	if base != again {
		t.Errorf("the same template and configs gave %s and %s", base, again)
	}
	d.Spec.Template.Spec.Containers[0].Image = "web:2"
	if r, _ := revision(&d.Spec.Template, configs); r == base {
		t.Errorf("an image change kept the revision %s", r)
	}
	if r, _ := revision(&target().Spec.Template, map[string]string{"configmap/cm-vol": "bbb"}); r == base {
		t.Errorf("a config content change kept the revision %s", r)
	}
	d = target()
	d.Spec.Replicas = ptr.To[int32](9)
	if r, _ := revision(&d.Spec.Template, configs); r != base {
		t.Errorf("a replica change moved the revision to %s", r)
	}
}

func TestBuildPrimaryGivesThePrimaryItsOwnSelectorAndConfigCopies(t *testing.T) {
	d := target()
	canary, primarySel, err := selectors(d)
	if err != nil {
		t.Fatal(err)
	}
	if canary["app"] != "web" || primarySel["app"] != "web-primary" {
		t.Fatalf("selectors = %v / %v", canary, primarySel)
	}
	copied := map[string]bool{"configmap/cm-vol": true, "configmap/cm-proj": true, "secret/sec-envfrom": true}
	p := buildPrimary(d, primarySel, copied, "rev1", 3)

	if p.Name != "web-primary" || p.Annotations[RevisionAnnotation] != "rev1" || *p.Spec.Replicas != 3 {
		t.Errorf("primary meta = %s %v replicas %d", p.Name, p.Annotations, *p.Spec.Replicas)
	}
	if got := p.Spec.Template.Labels; got["app"] != "web-primary" || got["tier"] != "front" {
		t.Errorf("primary pod labels = %v, want app=web-primary and the target's other labels", got)
	}
	if got := p.Spec.Selector.MatchLabels; !maps.Equal(got, primarySel) {
		t.Errorf("primary selector = %v", got)
	}
	spec := p.Spec.Template.Spec
	if spec.Volumes[0].ConfigMap.Name != "cm-vol-primary" || spec.Volumes[2].Projected.Sources[0].ConfigMap.Name != "cm-proj-primary" {
		t.Errorf("volumes not renamed: %+v", spec.Volumes)
	}
	if spec.Volumes[1].Secret.SecretName != "sec-vol" {
		t.Errorf("an optional, absent (not copied) secret was renamed to %s", spec.Volumes[1].Secret.SecretName)
	}
	if spec.InitContainers[0].EnvFrom[0].SecretRef.Name != "sec-envfrom-primary" {
		t.Errorf("envFrom not renamed")
	}
	if spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name != "cm-vol-primary" {
		t.Errorf("env valueFrom not renamed")
	}
	if d.Spec.Template.Spec.Volumes[0].ConfigMap.Name != "cm-vol" || d.Spec.Template.Labels["app"] != "web" {
		t.Errorf("buildPrimary modified the target")
	}
}

func TestSelectorsRefuseTargetsSluiceCannotSplit(t *testing.T) {
	d := target()
	d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}
	if _, _, err := selectors(d); err == nil {
		t.Error("a matchExpressions selector was accepted")
	}
	d.Spec.Selector = &metav1.LabelSelector{}
	if _, _, err := selectors(d); err == nil {
		t.Error("an empty selector was accepted")
	}
}

func TestDeploymentReadyNeedsEveryReplicaUpdatedAndAvailable(t *testing.T) {
	d := target()
	d.Generation = 2
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}
	if ok, msg := deploymentReady(d); !ok {
		t.Errorf("a rolled-out Deployment is not ready: %s", msg)
	}
	d.Status.AvailableReplicas = 2
	if ok, msg := deploymentReady(d); ok || msg != "3/3 replicas updated, 2 available" {
		t.Errorf("ready=%v msg=%q with 2 of 3 available", ok, msg)
	}
	d.Status.AvailableReplicas, d.Status.ObservedGeneration = 3, 1
	if ok, _ := deploymentReady(d); ok {
		t.Error("ready before the Deployment controller observed the spec")
	}
	d.Spec.Replicas = ptr.To[int32](0)
	if ok, _ := deploymentReady(d); ok {
		t.Error("a Deployment scaled to zero counts as ready")
	}
}

// withSpreadAndAffinity gives a target a spread constraint and pod affinity
// and anti-affinity terms about its own pods and about another app's.
func withSpreadAndAffinity(d *appsv1.Deployment) *appsv1.Deployment {
	own := func() *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	}
	cache := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}}
	d.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: "zone", LabelSelector: own(), MatchLabelKeys: []string{"pod-template-hash"},
	}}
	d.Spec.Template.Spec.Affinity = &corev1.Affinity{
		PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{TopologyKey: "zone", LabelSelector: cache}},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 10, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "zone", LabelSelector: own()},
			}},
		},
		PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey: "host", LabelSelector: own(), MismatchLabelKeys: []string{"tenant"},
			}},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 50, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "rack", LabelSelector: own()},
			}},
		},
	}
	return d
}

func TestBuildPrimarySpreadsAndAvoidsThePrimarysOwnPods(t *testing.T) {
	d := withSpreadAndAffinity(target())
	_, primarySel, _ := selectors(d)
	spec := buildPrimary(d, primarySel, nil, "rev1", 3).Spec.Template.Spec

	tsc := spec.TopologySpreadConstraints[0]
	if got := tsc.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("topology spread selects app=%s, want web-primary", got)
	}
	if !slices.Equal(tsc.MatchLabelKeys, []string{"pod-template-hash"}) {
		t.Errorf("topology spread matchLabelKeys = %v, want them kept", tsc.MatchLabelKeys)
	}
	aff, anti := spec.Affinity.PodAffinity, spec.Affinity.PodAntiAffinity
	if got := aff.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels["app"]; got != "cache" {
		t.Errorf("affinity to another app became app=%s, want cache", got)
	}
	if got := aff.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("preferred affinity selects app=%s, want web-primary", got)
	}
	req := anti.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if got := req.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("required anti-affinity selects app=%s, want web-primary", got)
	}
	if !slices.Equal(req.MismatchLabelKeys, []string{"tenant"}) {
		t.Errorf("anti-affinity mismatchLabelKeys = %v, want them kept", req.MismatchLabelKeys)
	}
	if got := anti.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels["app"]; got != "web-primary" {
		t.Errorf("preferred anti-affinity selects app=%s, want web-primary", got)
	}
	if got := d.Spec.Template.Spec.TopologySpreadConstraints[0].LabelSelector.MatchLabels["app"]; got != "web" {
		t.Errorf("buildPrimary changed the target's constraint to app=%s", got)
	}
}

func TestRelabelTurnsSelectorsOfTheTargetsPodsToThePrimarys(t *testing.T) {
	m := relabel{target: map[string]string{"app": "web", "track": "main"}, primary: map[string]string{"app": "web-primary", "track": "main-primary"}}
	expr := func(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	for _, tc := range []struct {
		name    string
		in, out *metav1.LabelSelector
	}{
		{"nil stays nil", nil, nil},
		{"matchLabels on the target's selector value",
			&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "track": "main"}},
			&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web-primary", "track": "main-primary"}}},
		{"keys outside the target's selector are kept",
			&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "web"}},
			&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web-primary", "tier": "web"}}},
		{"another app is left alone",
			&metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
			&metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}}},
		{"In maps the target's value and keeps the others",
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("app", metav1.LabelSelectorOpIn, "web", "cache")}},
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("app", metav1.LabelSelectorOpIn, "web-primary", "cache")}}},
		{"NotIn maps the target's value",
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("track", metav1.LabelSelectorOpNotIn, "main")}},
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("track", metav1.LabelSelectorOpNotIn, "main-primary")}}},
		{"In on a key outside the target's selector is kept",
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("tier", metav1.LabelSelectorOpIn, "web")}},
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("tier", metav1.LabelSelectorOpIn, "web")}}},
		{"Exists names a key the primary's pods share",
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("app", metav1.LabelSelectorOpExists)}},
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{expr("app", metav1.LabelSelectorOpExists)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before *metav1.LabelSelector
			if tc.in != nil {
				before = tc.in.DeepCopy()
			}
			got := m.selector(tc.in)
			if !equality.Semantic.DeepEqual(got, tc.out) {
				t.Errorf("selector(%v) = %v, want %v", tc.in, got, tc.out)
			}
			if !equality.Semantic.DeepEqual(tc.in, before) {
				t.Errorf("the input selector was changed to %v", tc.in)
			}
		})
	}
}

func TestRelabelLeavesAffinityTermsAboutOtherNamespacesAlone(t *testing.T) {
	m := relabel{target: map[string]string{"app": "web"}, primary: map[string]string{"app": "web-primary"}}
	term := func(namespaces []string, nsSel *metav1.LabelSelector) corev1.PodAffinityTerm {
		return corev1.PodAffinityTerm{TopologyKey: "host", Namespaces: namespaces, NamespaceSelector: nsSel,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
	}
	for _, tc := range []struct {
		name string
		term corev1.PodAffinityTerm
		want string
	}{
		{"the pod's own namespace", term(nil, nil), "web-primary"},
		{"a list that holds the pod's namespace", term([]string{"other", "ns"}, nil), "web-primary"},
		{"another namespace", term([]string{"other"}, nil), "web"},
		{"a namespace selector", term(nil, &metav1.LabelSelector{}), "web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := &corev1.PodSpec{Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{tc.term},
			}}}
			m.podSelectors(spec, "ns")
			if got := spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels["app"]; got != tc.want {
				t.Errorf("app=%s, want %s", got, tc.want)
			}
		})
	}
}
