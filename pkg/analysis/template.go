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
// error (missingkey=error); a template never panics the controller.
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
	funcs := template.FuncMap{}
	for k, val := range data {
		funcs[k] = func() any { return val }
	}
	tpl, err := template.New(check.Name).Option("missingkey=error").Funcs(funcs).Parse(query)
	if err != nil {
		return "", fmt.Errorf("parsing the query template: %w", err)
	}
	var b strings.Builder
	if err := tpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering the query template: %w", err)
	}
	return strings.TrimSpace(b.String()), nil
}

// variables are the check's variables, never nil so that templates may
// index them (a missing key is still an error).
func variables(check sluicev1.MetricCheck) map[string]string {
	if check.Variables == nil {
		return map[string]string{}
	}
	return check.Variables
}
