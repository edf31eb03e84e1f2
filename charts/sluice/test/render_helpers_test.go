package test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// releaseNS is the namespace the chart is installed into in these tests.
const releaseNS = "sluice-system"

// kubeVersion is the test API server's version, which the chart renders for.
var kubeVersion *chartutil.KubeVersion

// rendered is the chart's output for one set of values.
type rendered struct {
	t       *testing.T
	objects []*unstructured.Unstructured
	notes   string
}

// render renders the chart as `helm install sluice charts/sluice -n
// sluice-system -f values.yaml` would, without a cluster. values is YAML.
func render(t *testing.T, values string) *rendered {
	t.Helper()
	r, err := tryRender(values)
	if err != nil {
		t.Fatalf("rendering the chart with values %q: %v", values, err)
	}
	r.t = t
	return r
}

// tryRender renders the chart and returns the error Helm reports.
func tryRender(values string) (*rendered, error) {
	install := action.NewInstall(&action.Configuration{})
	install.ClientOnly, install.DryRun = true, true
	// The Kubernetes version of the test API server (TestMain reads it).
	install.KubeVersion = kubeVersion
	return runInstall(install, releaseNS, values)
}

// renderOnServer renders the chart as `helm install --dry-run=server`
// would against the test API server: templates' lookup calls see its
// objects, as on an install or upgrade.
func renderOnServer(t *testing.T, ns, values string) *rendered {
	t.Helper()
	getter := genericclioptions.NewConfigFlags(false)
	getter.KubeConfig, getter.Namespace = ptr.To(kubeconfig), ptr.To(ns)
	cfg := &action.Configuration{}
	if err := cfg.Init(getter, ns, "memory", t.Logf); err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(cfg)
	install.DryRun, install.DryRunOption = true, "server"
	r, err := runInstall(install, ns, values)
	if err != nil {
		t.Fatalf("rendering the chart on the server with values %q: %v", values, err)
	}
	r.t = t
	return r
}

// runInstall runs a dry-run install of the chart as release "sluice" in ns
// and reads the objects of its manifest.
func runInstall(install *action.Install, ns, values string) (*rendered, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		return nil, err
	}
	install.ReleaseName, install.Namespace = "sluice", ns
	rel, err := install.Run(ch, vals)
	if err != nil {
		return nil, err
	}
	r := &rendered{notes: rel.Info.Notes}
	manifests := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(manifests))
	for k := range manifests {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		obj := map[string]any{}
		if err := yaml.Unmarshal([]byte(manifests[k]), &obj); err != nil {
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		r.objects = append(r.objects, &unstructured.Unstructured{Object: obj})
	}
	return r, nil
}

// find returns the object of that kind whose name ends with suffix, or nil.
func (r *rendered) find(kind, suffix string) *unstructured.Unstructured {
	for _, o := range r.objects {
		if o.GetKind() == kind && strings.HasSuffix(o.GetName(), suffix) {
			return o
		}
	}
	return nil
}

// kinds lists the rendered objects as Kind/name.
func (r *rendered) kinds() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// into converts the object of that kind and name suffix to a typed object,
// failing the test when it is missing.
func (r *rendered) into(kind, suffix string, typed any) {
	r.t.Helper()
	o := r.find(kind, suffix)
	if o == nil {
		r.t.Fatalf("no %s named *%s among %v", kind, suffix, r.kinds())
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, typed); err != nil {
		r.t.Fatalf("%s %s: %v", kind, o.GetName(), err)
	}
}

func (r *rendered) manager() *appsv1.Deployment {
	d := &appsv1.Deployment{}
	r.into("Deployment", "-manager", d)
	return d
}

func (r *rendered) clusterRole() *rbacv1.ClusterRole {
	cr := &rbacv1.ClusterRole{}
	r.into("ClusterRole", "-manager", cr)
	return cr
}

// grant is one (API group, resource, verb) a rule allows.
type grant struct{ group, resource, verb string }

func (g grant) String() string { return g.group + "/" + g.resource + ":" + g.verb }

// grants flattens rules into sorted (group, resource, verb) triples.
func grants(rules []rbacv1.PolicyRule) []grant {
	var out []grant
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, grant{g, res, v})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b grant) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

// grantsFor keeps the grants on one API group.
func grantsFor(gs []grant, group string) []grant {
	var out []grant
	for _, g := range gs {
		if g.group == group {
			out = append(out, g)
		}
	}
	return out
}
