package analysis

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// Render renders a MetricTemplate query for a check of a Rollout.
//
// The query sees .namespace, .name, .target, .service, .interval,
// .variables (the metric check's variables), .side and .revision, and
// the same values as functions for Flagger-style templates
// ({{ namespace }}, {{ target }}, ...). A reference to anything else is an
// error (missingkey=error); a template never panics the controller, and
// its size, output and loops are bounded (see template_limits.go).
func Render(query string, ro *sluicev1.Rollout, check sluicev1.MetricCheck) (string, error) {
	return render(query, ro, check, renderFor{})
}

// RenderSide renders a compare check's query for one side, sampled every
// step: see renderFor.
func RenderSide(query string, ro *sluicev1.Rollout, check sluicev1.MetricCheck, side Side, step time.Duration) (string, error) {
	return render(query, ro, check, renderFor{side: side, step: step})
}

// renderFor says what a rendering is for. The zero value is a plain check:
// the canary, over the check's interval.
//
// For a compare check the query is rendered once per side, and only these
// fields differ between the two renderings:
//
//	.side      "canary"                   "primary"
//	.target    <target>                   <target>-primary
//	.revision  status.canaryRevision      status.stableRevision
//
// .namespace, .name, .service (the apex Service: each side's own is
// {{ .service }}-{{ .side }}) and .variables are the same for both, and
// .interval is the step, on both sides, so that each sample covers its own
// step of the window.
type renderFor struct {
	side Side
	step time.Duration
}

// data is what a query template sees.
func (f renderFor) data(ro *sluicev1.Rollout, check sluicev1.MetricCheck) map[string]any {
	v := varsFor(ro, check)
	side, target, revision := SideCanary, v.Target, ro.Status.CanaryRevision
	if f.side == SidePrimary {
		side, target, revision = SidePrimary, v.Target+"-primary", ro.Status.StableRevision
	}
	interval := v.Interval
	if f.step > 0 {
		interval = model.Duration(f.step).String()
	}
	return map[string]any{
		"namespace": v.Namespace,
		"name":      v.Name,
		"target":    target,
		"service":   v.Service,
		"interval":  interval,
		"variables": variables(check),
		"side":      string(side),
		"revision":  revision,
	}
}

func render(query string, ro *sluicev1.Rollout, check sluicev1.MetricCheck, f renderFor) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("rendering the query panicked: %v", r)
		}
	}()
	data := f.data(ro, check)
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
