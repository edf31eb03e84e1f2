package analysis

import (
	"fmt"
	"strings"
	"text/template"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Render renders a MetricTemplate query for a check of a Rollout.
//
// The query sees .namespace, .name, .target, .service, .interval and
// .variables (the metric check's variables), and
// the same values as functions for Flagger-style templates
// ({{ namespace }}, {{ target }}, ...). A reference to anything else is an
// error (missingkey=error); a template never panics the controller, and
// its size, output and loops are bounded (see template_limits.go).
func Render(query string, ro *sluicev1.Rollout, check sluicev1.MetricCheck) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("rendering the query panicked: %v", r)
		}
	}()
	v := varsFor(ro, check)
	data := map[string]any{
		"namespace": v.Namespace,
		"name":      v.Name,
		"target":    v.Target,
		"service":   v.Service,
		"interval":  v.Interval,
		"variables": variables(check),
	}
	if len(query) > maxQuerySource {
		return "", fmt.Errorf("query template is longer than %d KiB", maxQuerySource>>10)
	}
	funcs := safeFuncs()
	for k, val := range data {
		funcs[k] = func() any { return val }
	}
	tpl, err := template.New(check.Name).Option("missingkey=error").Funcs(funcs).Parse(query)
	if err != nil {
		return "", fmt.Errorf("parsing the query template: %w", err)
	}
	if err := bound(tpl); err != nil {
		return "", err
	}
	w := &cappedWriter{max: maxRendered}
	if err := tpl.Execute(w, data); err != nil {
		return "", fmt.Errorf("rendering the query template: %w", err)
	}
	return strings.TrimSpace(string(w.buf)), nil
}

// variables are the check's variables, never nil so that templates may
// index them (a missing key is still an error).
func variables(check sluicev1.MetricCheck) map[string]string {
	if check.Variables == nil {
		return map[string]string{}
	}
	return check.Variables
}
