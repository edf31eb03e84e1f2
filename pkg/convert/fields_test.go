package convert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fieldListed says whether path, or a field above it, is in Fields for kind.
func fieldListed(kind, path string) bool {
	for p := path; p != ""; {
		for _, f := range Fields {
			if f.Kind == kind && f.Path == p {
				return true
			}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
	return false
}

// TestEveryFieldTheConverterReadsIsInTheFieldList converts the fixtures
// and checks that each spec field read is listed in Fields (metadata,
// apiVersion and kind are described in the guide's prose).
func TestEveryFieldTheConverterReadsIsInTheFieldList(t *testing.T) {
	inputs, _ := filepath.Glob("testdata/*.yaml")
	for _, in := range inputs {
		_, _, results := convertFile(t, in)
		for _, res := range results {
			kind, _, _ := strings.Cut(res.Source, " ")
			for f := range res.read {
				if f == "apiVersion" || f == "kind" || f == "status" || strings.HasPrefix(f, "metadata.") || f == "spec" {
					continue
				}
				if !fieldListed(kind, f) {
					t.Errorf("%s: %s reads %s, which is not in Fields (nor in the migration guide)", in, kind, f)
				}
			}
		}
	}
}

// TestTheMigrationGuideHasARowForEveryField checks that
// docs/migrating-from-flagger.md has a table row for every field the
// converter knows, under the heading of its kind.
func TestTheMigrationGuideHasARowForEveryField(t *testing.T) {
	b, err := os.ReadFile("../../docs/migrating-from-flagger.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	section := func(kind string) string {
		start := strings.Index(doc, "\n## "+kind+" fields")
		if start < 0 {
			t.Fatalf("the guide has no heading %q", "## "+kind+" fields")
		}
		rest := doc[start+1:]
		if end := strings.Index(rest[3:], "\n## "); end >= 0 {
			rest = rest[:end+3]
		}
		return rest
	}
	for _, f := range Fields {
		row := "| `" + f.Path + "` | " + string(f.Support) + " |"
		if !strings.Contains(section(f.Kind), row) {
			t.Errorf("docs/migrating-from-flagger.md, %s fields: no row starting %s", f.Kind, row)
		}
	}
}
