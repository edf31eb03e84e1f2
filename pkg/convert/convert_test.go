package convert

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the converter's output")

// convertFile runs the conversion of one manifest as `kubectl sluice
// convert` prints it: the objects, then the report.
func convertFile(t *testing.T, path string) (objects, report string, results []Result) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	docs, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	var rep bytes.Buffer
	for _, d := range docs {
		res := Convert(d)
		results = append(results, res)
		objs = append(objs, res.Objects...)
		if err := WriteReport(&rep, res); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := WriteObjects(&out, objs, "yaml"); err != nil {
		t.Fatal(err)
	}
	return out.String(), rep.String(), results
}

// TestFlaggerManifestsConvertAsTheGoldenFilesSay converts every
// testdata/*.yaml and compares objects and report with its .golden file
// (go test -run Golden ./pkg/convert -update rewrites them).
func TestFlaggerManifestsConvertAsTheGoldenFilesSay(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/*.yaml")
	if len(inputs) < 9 {
		t.Fatalf("want at least nine fixtures, found %d", len(inputs))
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			objects, report, _ := convertFile(t, in)
			got := objects + "# ---- report (stderr) ----\n" + report
			golden := strings.TrimSuffix(in, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s (run with -update after checking the change):\n%s", in, golden, got)
			}
		})
	}
}
