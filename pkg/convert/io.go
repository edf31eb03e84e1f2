package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Decode reads the objects of a YAML stream (documents separated by ---)
// or of JSON; a List's items are read one by one. Empty documents are
// skipped.
func Decode(r io.Reader) ([]map[string]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []map[string]any
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(obj) == 0 {
			continue
		}
		if items, ok := obj["items"].([]any); ok && isList(obj) {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					out = append(out, m)
				}
			}
			continue
		}
		out = append(out, obj)
	}
}

func isList(obj map[string]any) bool {
	kind, _ := obj["kind"].(string)
	return kind == "List" || (len(kind) > 4 && kind[len(kind)-4:] == "List")
}

// WriteObjects prints objects as YAML documents separated by "---", or, for
// format "json", as one JSON List.
func WriteObjects(w io.Writer, objs []map[string]any, format string) error {
	switch format {
	case "", "yaml":
		var b bytes.Buffer
		for i, o := range objs {
			if i > 0 {
				b.WriteString("---\n")
			}
			y, err := yaml.Marshal(o)
			if err != nil {
				return err
			}
			b.Write(y)
		}
		_, err := w.Write(b.Bytes())
		return err
	case "json":
		items := objs
		if items == nil {
			items = []map[string]any{}
		}
		list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
		j, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", j)
		return err
	}
	return fmt.Errorf("unknown output format %q: use yaml or json", format)
}
