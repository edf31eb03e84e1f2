package plugin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/pkg/convert"
)

// fixtures are the Flagger manifests of the converter's golden tests.
func fixtures(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../convert/testdata/*.yaml")
	if err != nil || len(files) < 9 {
		t.Fatalf("want at least nine Flagger fixtures, found %d (%v)", len(files), err)
	}
	return files
}

// TestEveryConvertedObjectIsAcceptedByTheAPIServer converts each fixture
// with `kubectl sluice convert` and creates what it prints on a real API
// server, so that the CRDs' schema and CEL rules judge the output.
func TestEveryConvertedObjectIsAcceptedByTheAPIServer(t *testing.T) {
	rollouts := 0
	for _, file := range fixtures(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			res := plugin(t, "convert", "-f", file, "--allow-loss")
			wantCode := ExitOK
			if strings.Contains(res.stderr, "NOT CONVERTED") {
				wantCode = ExitFailed
			}
			if res.code != wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", res.code, wantCode, res.stderr)
			}
			objs, err := convert.Decode(strings.NewReader(res.stdout))
			if err != nil || len(objs) == 0 {
				t.Fatalf("stdout is not Sluice objects (%v):\n%s", err, res.stdout)
			}
			ns := newNamespace(t)
			for _, o := range objs {
				u := &unstructured.Unstructured{Object: o}
				u.SetNamespace(ns)
				if err := k8s.Create(context.Background(), u); err != nil {
					t.Errorf("%s %s: the API server refuses it: %v", u.GetKind(), u.GetName(), err)
				}
				if u.GetKind() == "Rollout" {
					rollouts++
				}
			}
		})
	}
	if rollouts < 9 {
		t.Errorf("%d Rollouts created, want one per Canary fixture", rollouts)
	}
}

// TestConvertReadsStdinAndWritesJSON pipes a Canary in and asks for JSON:
// the objects go to stdout, the report to stderr only.
func TestConvertReadsStdinAndWritesJSON(t *testing.T) {
	in, err := os.ReadFile("../convert/testdata/service-metadata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"convert", "-f", "-", "-o", "json", "--allow-loss"},
		genericiooptions.IOStreams{In: bytes.NewReader(in), Out: &out, ErrOut: &errOut})
	if code != ExitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "{") || !strings.Contains(out.String(), `"kind": "Rollout"`) {
		t.Errorf("stdout is not a JSON List with the Rollout:\n%s", out.String())
	}
	if !strings.Contains(errOut.String(), "spec.service.name: differs") || strings.Contains(out.String(), "differs") {
		t.Errorf("the report belongs on stderr only; stderr:\n%s", errOut.String())
	}
}

// TestConvertWithoutAFileSaysHowToGiveOne checks the usage errors.
func TestConvertWithoutAFileSaysHowToGiveOne(t *testing.T) {
	if res := plugin(t, "convert"); res.code != ExitFailed || !strings.Contains(res.stderr, "-f FILE") {
		t.Errorf("got %d %q", res.code, res.stderr)
	}
	if res := plugin(t, "convert", "-f", "../convert/testdata", "-o", "wide"); res.code != ExitFailed || !strings.Contains(res.stderr, "yaml or json") {
		t.Errorf("got %d %q", res.code, res.stderr)
	}
	res := plugin(t, "convert", "-f", "../convert/testdata")
	if res.code != ExitFailed || !strings.Contains(res.stderr, "# ../convert/testdata/istio-ab.yaml") {
		t.Errorf("a directory should convert every manifest in it, naming each; got %d:\n%s", res.code, res.stderr)
	}
}

// TestConvertExitsNonZeroWhenAFieldIsLostUnlessAllowed: a conversion that
// could not carry a field over is not a success to a script; --allow-loss
// accepts it. The objects are printed either way, for a person to read.
func TestConvertExitsNonZeroWhenAFieldIsLostUnlessAllowed(t *testing.T) {
	if res := plugin(t, "convert", "-f", "../convert/testdata/istio-bluegreen.yaml"); res.code != ExitOK {
		t.Errorf("a conversion without loss: exit %d, want 0; stderr:\n%s", res.code, res.stderr)
	}
	res := plugin(t, "convert", "-f", "../convert/testdata/custom-metrics.yaml")
	if res.code != ExitFailed || !strings.Contains(res.stderr, "not carried over") || !strings.Contains(res.stderr, "--allow-loss") {
		t.Errorf("a lossy conversion: exit %d, want 1 with the lost fields and how to accept them; stderr:\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, "kind: Rollout") {
		t.Errorf("a lossy conversion still prints what it converted; stdout:\n%s", res.stdout)
	}
	if res := plugin(t, "convert", "-f", "../convert/testdata/custom-metrics.yaml", "--allow-loss"); res.code != ExitOK {
		t.Errorf("a lossy conversion with --allow-loss: exit %d, want 0; stderr:\n%s", res.code, res.stderr)
	}
}

// TestConvertApplyCreatesWhatItConvertsWithStrictFieldValidation: --apply
// server-side applies the converted objects, and the API server refuses an
// unknown field rather than pruning it.
func TestConvertApplyCreatesWhatItConvertsWithStrictFieldValidation(t *testing.T) {
	ns := newNamespace(t)
	raw, err := os.ReadFile("../convert/testdata/gatewayapi-canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "canary.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(raw), "namespace: api", "namespace: "+ns)), 0o600); err != nil {
		t.Fatal(err)
	}
	res := plugin(t, "convert", "-f", file, "--apply")
	if res.code != ExitOK || !strings.Contains(res.stdout, "rollout.sluice.dev/quotes applied") {
		t.Fatalf("convert --apply: exit %d; stdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	ro := &unstructured.Unstructured{}
	ro.SetGroupVersionKind(schema.GroupVersionKind{Group: "sluice.dev", Version: "v1alpha1", Kind: "Rollout"})
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "quotes"}, ro); err != nil {
		t.Fatalf("the applied Rollout: %v", err)
	}

	o := &options{flags: genericclioptions.NewConfigFlags(true)}
	o.flags.KubeConfig = &kubeconfig
	c, err := o.clients()
	if err != nil {
		t.Fatal(err)
	}
	bad := ro.DeepCopy().Object
	delete(bad, "status")
	unstructured.RemoveNestedField(bad, "metadata", "managedFields")
	unstructured.RemoveNestedField(bad, "metadata", "resourceVersion")
	_ = unstructured.SetNestedField(bad, int64(3), "spec", "analysis", "treshold")
	err = c.apply(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "treshold") {
		t.Errorf("applying a Rollout with a misspelt field: %v, want the API server to refuse it by name", err)
	}
}
