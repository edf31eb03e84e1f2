// Package convert turns Flagger objects (flagger.app/v1beta1 Canary,
// MetricTemplate and AlertProvider) into their Sluice counterparts
// (sluice.dev/v1alpha1 Rollout, MetricTemplate and AlertProvider), and says,
// field by field, what it could not carry over or what behaves differently.
//
// It is pure: it reads the Flagger objects as unstructured maps (no Flagger
// Go types, no API server) and returns the Sluice objects as maps ready to
// print. No field of the input is dropped silently: every field the
// converter did not read is reported as not carried over.
package convert

import (
	"encoding/json"
	"fmt"
	"strings"
)

// FlaggerGroup is the API group of Flagger's objects.
const FlaggerGroup = "flagger.app"

// NoteKind says what became of a field.
type NoteKind string

// Kinds of notes.
const (
	// NotCarried: the field (or part of it) has no place in the Sluice object.
	NotCarried NoteKind = "not carried over"
	// Differs: the field is carried over, but Sluice behaves differently.
	Differs NoteKind = "differs"
	// Changed: the value was changed to fit Sluice.
	Changed NoteKind = "changed"
)

// Note is one finding about one field of an input object.
type Note struct {
	// Field is the field's path in the input, e.g. spec.service.corsPolicy.
	Field string
	Kind  NoteKind
	// Reason says why, and what to do about it.
	Reason string
}

// Result is the conversion of one input object.
type Result struct {
	// Source names the input, e.g. "Canary shop/podinfo".
	Source string
	// Objects are the Sluice objects, ready to print; empty when the input
	// could not be converted or is not a Flagger object.
	Objects []map[string]any
	// Notes are the findings, in the order of the input's fields.
	Notes []Note
	// Skipped says why an input that is not a Flagger object was left out.
	Skipped string
	// Err says why a Flagger object could not be converted.
	Err error

	// read are the fields the converter read, named as in Fields.
	read map[string]bool
}

// Convert converts one decoded object (a Flagger Canary, MetricTemplate or
// AlertProvider).
// Other objects are skipped, with the reason in Result.Skipped.
func Convert(obj map[string]any) Result {
	r := newReader(obj)
	apiVersion, _ := r.str("apiVersion")
	kind, _ := r.str("kind")
	res := Result{Source: source(kind, obj)}
	group, version, _ := strings.Cut(apiVersion, "/")
	if group != FlaggerGroup || (kind != "Canary" && kind != "MetricTemplate" && kind != "AlertProvider") {
		res.Skipped = fmt.Sprintf("%s %s is not a Flagger Canary, MetricTemplate or AlertProvider", apiVersion, kind)
		return res
	}
	if version != "v1beta1" {
		r.note("apiVersion", Differs, "%s is read as flagger.app/v1beta1", apiVersion)
	}
	meta := convertMeta(r)
	var objs []map[string]any
	var err error
	switch kind {
	case "Canary":
		objs, err = convertCanary(r, meta)
	case "AlertProvider":
		objs, err = convertAlertProvider(r, meta)
	default:
		objs, err = convertMetricTemplate(r, meta)
	}
	if err != nil {
		// The notes so far still help; unread fields mean nothing when
		// nothing was made.
		res.Notes, res.Err = r.t.notes, err
		return res
	}
	r.use("status")
	for _, f := range r.t.unread("", obj) {
		r.t.notes = append(r.t.notes, Note{Field: f, Kind: NotCarried,
			Reason: "not a field the converter knows: Sluice has no place for it"})
	}
	res.Notes, res.Objects, res.read = r.t.notes, objs, r.t.known
	return res
}

// source names an input object for the report.
func source(kind string, obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if ns, _ := meta["namespace"].(string); ns != "" {
		name = ns + "/" + name
	}
	if kind == "" {
		kind = "object"
	}
	return strings.TrimSpace(kind + " " + name)
}

// objectMeta is what a converted object keeps of its input's metadata.
type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// serverSetMeta are metadata fields the API server sets: a converted object
// is a new object and leaves them out.
var serverSetMeta = []string{"uid", "resourceVersion", "generation", "creationTimestamp",
	"managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName"}

// convertMeta keeps name, namespace, labels and annotations (without
// kubectl's last-applied-configuration).
func convertMeta(r *reader) objectMeta {
	m := r.obj("metadata")
	if m == nil {
		return objectMeta{}
	}
	var meta objectMeta
	meta.Name, _ = m.str("name")
	meta.Namespace, _ = m.str("namespace")
	meta.Labels = m.strMap("labels")
	meta.Annotations = m.strMap("annotations")
	delete(meta.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	if len(meta.Annotations) == 0 {
		meta.Annotations = nil
	}
	for _, k := range serverSetMeta {
		m.use(k)
	}
	if m.has("ownerReferences") {
		m.note("ownerReferences", NotCarried, "owner references name the Canary's owners by UID; set them again if the Rollout needs them")
	}
	if m.has("finalizers") {
		m.note("finalizers", NotCarried, "finalizers belong to Flagger's controller")
	}
	return meta
}

// toMap turns a typed Sluice object into a printable map without status and
// server-set fields.
func toMap(obj any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return m, nil
}
