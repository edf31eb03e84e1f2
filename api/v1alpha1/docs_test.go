package v1alpha1_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestTheFieldReferenceNamesEveryField keeps docs/rollout.md in step with the
// API: every field of the generated CRDs must be named there in backticks.
func TestTheFieldReferenceNamesEveryField(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "rollout.md"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, crd := range []string{"sluice.dev_rollouts.yaml", "sluice.dev_metrictemplates.yaml", "sluice.dev_clustermetrictemplates.yaml", "sluice.dev_alertproviders.yaml"} {
		raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", crd))
		if err != nil {
			t.Fatal(err)
		}
		var def apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(raw, &def); err != nil {
			t.Fatal(err)
		}
		root := def.Spec.Versions[0].Schema.OpenAPIV3Schema
		for _, top := range []string{"spec", "status"} {
			if s, ok := root.Properties[top]; ok {
				walk(top, s, func(path, name string) {
					// The name as a component of a path in backticks.
					if !regexp.MustCompile("[`.]" + regexp.QuoteMeta(name) + "[`.\\[ :]").Match(doc) {
						missing = append(missing, path)
					}
				})
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/rollout.md does not name these fields (in backticks):\n  %s", strings.Join(missing, "\n  "))
	}
}

// walk calls f for every property below s, skipping the standard condition
// fields.
func walk(path string, s apiextensionsv1.JSONSchemaProps, f func(path, name string)) {
	props := s.Properties
	if s.Items != nil && s.Items.Schema != nil {
		props = s.Items.Schema.Properties
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		props = s.AdditionalProperties.Schema.Properties
	}
	if path == "status.conditions" {
		return
	}
	for name, p := range props {
		f(path+"."+name, name)
		walk(path+"."+name, p, f)
	}
}
