package workload_test

import (
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/workload"
	"github.com/sluice-dev/sluice/pkg/workload/workloadtest"
)

func TestConfigRefsFindsEveryWayAPodTemplateUsesConfiguration(t *testing.T) {
	got := map[string]bool{}
	for _, r := range workload.ConfigRefs(&workloadtest.Target().Spec.Template.Spec) {
		got[r.Key()] = r.Optional
	}
	want := map[string]bool{"configmap/cm-vol": false, "secret/sec-vol": true, "configmap/cm-proj": false, "secret/sec-envfrom": false}
	if !maps.Equal(got, want) {
		t.Errorf("configRefs = %v, want %v", got, want)
	}
}

func TestRevisionChangesWithTheTemplateAndWithConfigContentOnly(t *testing.T) {
	d := workloadtest.Target()
	configs := map[string]string{"configmap/cm-vol": "aaa"}
	base, _ := workload.Revision(&d.Spec.Template, configs)
	again, _ := workload.Revision(&workloadtest.Target().Spec.Template, map[string]string{"configmap/cm-vol": "aaa"})
	if base != again {
		t.Errorf("the same template and configs gave %s and %s", base, again)
	}
	d.Spec.Template.Spec.Containers[0].Image = "web:2"
	if r, _ := workload.Revision(&d.Spec.Template, configs); r == base {
		t.Errorf("an image change kept the revision %s", r)
	}
	if r, _ := workload.Revision(&workloadtest.Target().Spec.Template, map[string]string{"configmap/cm-vol": "bbb"}); r == base {
		t.Errorf("a config content change kept the revision %s", r)
	}
	d = workloadtest.Target()
	d.Spec.Replicas = ptr.To[int32](9)
	if r, _ := workload.Revision(&d.Spec.Template, configs); r != base {
		t.Errorf("a replica change moved the revision to %s", r)
	}
}

func TestTheDataChecksumChangesWithEveryPartOfTheContent(t *testing.T) {
	// Each content of a kind has its own checksum. (A ConfigMap and a Secret
	// of the same content share one: the kind is in the key a checksum is
	// recorded under, configRef.key.)
	sums := map[string]string{}
	for name, o := range map[string]client.Object{
		"empty Secret":          &corev1.Secret{},
		"Secret data":           &corev1.Secret{Data: map[string][]byte{"a": []byte("1")}},
		"Secret data, other":    &corev1.Secret{Data: map[string][]byte{"a": []byte("2")}},
		"Secret data, key":      &corev1.Secret{Data: map[string][]byte{"b": []byte("1")}},
		"ConfigMap data":        &corev1.ConfigMap{Data: map[string]string{"c": "1"}},
		"ConfigMap binary data": &corev1.ConfigMap{BinaryData: map[string][]byte{"a": []byte("1")}},
		"ConfigMap split":       &corev1.ConfigMap{Data: map[string]string{"a": "1", "b": ""}},
		"ConfigMap joined":      &corev1.ConfigMap{Data: map[string]string{"a": "1b"}},
	} {
		sum := workload.DataChecksum(o)
		if other, ok := sums[sum]; ok {
			t.Errorf("%s and %s have the same checksum %s", name, other, sum)
		}
		sums[sum] = name
	}
	// Annotations and labels are no content.
	a := &corev1.Secret{Data: map[string][]byte{"a": []byte("1")}}
	b := a.DeepCopy()
	b.Annotations, b.Labels = map[string]string{"x": "y"}, map[string]string{"x": "y"}
	if workload.DataChecksum(a) != workload.DataChecksum(b) {
		t.Errorf("the checksum changes with the metadata")
	}
}

func TestRelabelTurnsSelectorsOfTheTargetsPodsToThePrimarys(t *testing.T) {
	m := workload.Relabel{Target: map[string]string{"app": "web", "track": "main"}, Primary: map[string]string{"app": "web-primary", "track": "main-primary"}}
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
			got := m.Selector(tc.in)
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
	m := workload.Relabel{Target: map[string]string{"app": "web"}, Primary: map[string]string{"app": "web-primary"}}
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
			m.PodSelectors(spec, "ns")
			if got := spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels["app"]; got != tc.want {
				t.Errorf("app=%s, want %s", got, tc.want)
			}
		})
	}
}

func TestCopyNamesAreValidNamesAndDifferPerRollout(t *testing.T) {
	if got := workload.CopyNames("db", "web"); got != [2]string{"db-primary", "db-web-primary"} {
		t.Errorf("CopyNames(db, web) = %v", got)
	}
	// A long source (or Rollout) name is cut to leave room for the
	// alternate copy's suffix, and a hash keeps two cut names apart.
	// (cut where a DNS label ends: a label may not end with its dot).
	long := strings.Repeat("a", 226) + "." + strings.Repeat("b", 26)
	a, b := workload.CopyNames(long, "web"), workload.CopyNames(long, "api")
	if a[1] == b[1] {
		t.Errorf("two Rollouts' copies of one long source share the name %s", a[1])
	}
	for _, names := range [][2]string{a, b, workload.CopyNames(strings.Repeat("c", 253), strings.Repeat("r", 253))} {
		for _, n := range names {
			for _, name := range []string{n, workload.AltCopyName(n), workload.StableCopyName(n)} {
				if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
					t.Errorf("%s (%d characters) is not a valid name: %v", name, len(name), errs)
				}
			}
		}
	}
}
