package convert

import (
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// maxNameLength is the longest metric or webhook name Sluice accepts.
const maxNameLength = 63

// metrics maps analysis.metrics: built-in checks, templateRefs and inline
// queries (which become MetricTemplates of their own).
func (c *canaryConv) metrics(a *reader) []sluicev1.MetricCheck {
	var out []sluicev1.MetricCheck
	seen := map[string]bool{}
	for _, m := range a.items("metrics") {
		mc, ok := c.metric(m)
		if !ok {
			continue
		}
		if seen[mc.Name] {
			m.note("name", NotCarried, "a second metric named %s: Sluice's metric names are unique", mc.Name)
			continue
		}
		seen[mc.Name] = true
		out = append(out, mc)
	}
	return out
}

// metric maps one metric; false when nothing checkable is left of it.
func (c *canaryConv) metric(m *reader) (sluicev1.MetricCheck, bool) {
	name, _ := m.str("name")
	mc := sluicev1.MetricCheck{Name: shorten(m, "name", name)}
	mc.Interval = duration(m, "interval")
	mc.Variables = m.strMap("templateVariables")
	mc.ThresholdRange = &sluicev1.ThresholdRange{}
	if !thresholdRange(m, mc.ThresholdRange) {
		m.note("", NotCarried, "no thresholdRange: a Flagger metric has nothing else to judge it by (Sluice's compare against the primary has no Flagger equivalent)")
		return mc, false
	}
	switch {
	case m.has("templateRef"):
		ref := m.obj("templateRef")
		tname, _ := ref.str("name")
		mc.TemplateRef = &sluicev1.MetricTemplateReference{Name: tname}
		if ns, ok := ref.str("namespace"); ok && ns != c.meta.Namespace {
			mc.TemplateRef.Namespace = ns
			ref.note("namespace", Changed, "a MetricTemplate in another namespace is used only if it lists this Rollout's namespace in its sluice.dev/shared-with annotation: add %q to %s/%s's", c.meta.Namespace, ns, tname)
		}
		if m.has("query") {
			m.note("query", NotCarried, "templateRef is used")
		}
	case m.has("query"):
		query, _ := m.str("query")
		tmpl := c.inlineTemplate(name, query)
		m.note("query", Changed, "moved to MetricTemplate %s (printed after the Rollout), which the metric names in templateRef", tmpl)
		mc.TemplateRef = &sluicev1.MetricTemplateReference{Name: tmpl}
	case name == sluicev1.MetricRequestSuccessRate, name == sluicev1.MetricRequestDuration:
		// Built-ins with the same meaning and unit: the percentage of
		// non-5xx answers, and the p99 latency in milliseconds.
	default:
		m.note("", NotCarried, "%q is neither a built-in metric (request-success-rate, request-duration) nor has a templateRef or query", name)
		return mc, false
	}
	return mc, mc.Name != ""
}

// thresholdRange reads thresholdRange, or the deprecated threshold (a max).
func thresholdRange(m *reader, tr *sluicev1.ThresholdRange) bool {
	if r := m.obj("thresholdRange"); r != nil {
		if v, ok := r.float("min"); ok {
			tr.Min = &v
		}
		if v, ok := r.float("max"); ok {
			tr.Max = &v
		}
		if tr.Min != nil && tr.Max != nil && *tr.Min > *tr.Max {
			r.note("", NotCarried, "min is above max: no value could pass")
			tr.Min, tr.Max = nil, nil
		}
	}
	if v, ok := m.float("threshold"); ok && tr.Min == nil && tr.Max == nil {
		m.note("threshold", Changed, "Flagger's deprecated metric threshold became thresholdRange.max (request-success-rate: min)")
		if name, _ := m.lookup("name"); name == sluicev1.MetricRequestSuccessRate {
			tr.Min = &v
		} else {
			tr.Max = &v
		}
	}
	return tr.Min != nil || tr.Max != nil
}

// shorten cuts a name to 63 characters, with a note.
func shorten(r *reader, key, name string) string {
	if len(name) <= maxNameLength {
		return name
	}
	r.note(key, Changed, "cut to %d characters", maxNameLength)
	return strings.TrimRight(name[:maxNameLength], "-.")
}

// inlineTemplate makes a MetricTemplate of an inline query and returns its
// name: <canary>-<metric>.
func (c *canaryConv) inlineTemplate(metric, query string) string {
	name := dnsName(c.meta.Name + "-" + metric)
	c.extra = append(c.extra, &sluicev1.MetricTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "MetricTemplate"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.meta.Namespace},
		Spec: sluicev1.MetricTemplateSpec{
			Provider: sluicev1.MetricProvider{Type: "prometheus", Address: c.metricsServer},
			Query:    query,
		},
	})
	return name
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsName makes s a DNS-1123 label.
func dnsName(s string) string {
	s = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > maxNameLength {
		s = strings.TrimRight(s[:maxNameLength], "-")
	}
	return s
}

// webhooks maps analysis.webhooks.
func (c *canaryConv) webhooks(a *reader) []sluicev1.Webhook {
	var out []sluicev1.Webhook
	seen := map[string]bool{}
	for _, w := range a.items("webhooks") {
		wh, ok := webhook(w)
		if !ok {
			continue
		}
		if seen[wh.Name] {
			w.note("name", NotCarried, "a second webhook named %s: Sluice's webhook names are unique", wh.Name)
			continue
		}
		seen[wh.Name] = true
		out = append(out, wh)
	}
	return out
}

// webhook maps one webhook; false when it cannot be called by Sluice.
func webhook(w *reader) (sluicev1.Webhook, bool) {
	name, _ := w.str("name")
	wh := sluicev1.Webhook{Name: shorten(w, "name", name), Type: sluicev1.HookRollout}
	if t, ok := w.str("type"); ok {
		wh.Type = sluicev1.HookType(t)
	}
	if !containsHook(wh.Type) {
		w.note("", NotCarried, "type %q is not a webhook type Flagger or Sluice knows", wh.Type)
		return wh, false
	}
	wh.URL, _ = w.str("url")
	if !strings.HasPrefix(wh.URL, "http://") && !strings.HasPrefix(wh.URL, "https://") {
		w.note("", NotCarried, "url %q: Sluice calls absolute http or https URLs only", wh.URL)
		return wh, false
	}
	wh.Timeout = duration(w, "timeout")
	if n, ok := w.int("retries"); ok {
		wh.Retries = int32(min(max(n, 0), 10))
		if int64(wh.Retries) != n {
			w.note("retries", Changed, "became %d: Sluice retries 0 to 10 times", wh.Retries)
		}
	}
	wh.Metadata = w.strMap("metadata")
	if _, ok := wh.Metadata["cmd"]; ok {
		w.note("metadata.cmd", Differs, "Sluice's loadtester runs no commands (its load comes from its own generator, docs/webhooks.md#the-loadtester): keep Flagger's loadtester running for this hook, or move the load test to Sluice's")
	}
	if b, ok := w.bool("muteAlert"); ok && b {
		w.note("muteAlert", NotCarried, "Sluice's notifications cannot be muted per webhook")
	}
	return wh, wh.Name != ""
}

func containsHook(t sluicev1.HookType) bool {
	for _, h := range sluicev1.HookTypes { // all of Flagger's
		if h == t {
			return true
		}
	}
	return false
}

// convertMetricTemplate converts a Flagger MetricTemplate. Sluice queries
// Prometheus only.
func convertMetricTemplate(r *reader, meta objectMeta) ([]map[string]any, error) {
	spec := r.obj("spec")
	if spec == nil {
		return nil, fmt.Errorf("the MetricTemplate has no spec")
	}
	p := spec.obj("provider")
	if p == nil {
		return nil, fmt.Errorf("spec.provider is missing")
	}
	typ, _ := p.str("type")
	if typ != "prometheus" {
		return nil, fmt.Errorf("spec.provider.type %q: Sluice queries Prometheus only", typ)
	}
	mt := &sluicev1.MetricTemplate{
		TypeMeta: metav1.TypeMeta{APIVersion: sluicev1.GroupVersion.String(), Kind: "MetricTemplate"},
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace,
			Labels: meta.Labels, Annotations: meta.Annotations},
		Spec: sluicev1.MetricTemplateSpec{Provider: sluicev1.MetricProvider{Type: "prometheus"}},
	}
	mt.Spec.Provider.Address, _ = p.str("address")
	if b, ok := p.bool("insecureSkipVerify"); ok {
		mt.Spec.Provider.InsecureSkipVerify = b
	}
	if name, ok := p.str("secretRef.name"); ok {
		mt.Spec.Provider.SecretRef = &sluicev1.LocalObjectReference{Name: name}
		p.note("secretRef", Differs, "Sluice uses the Secret %s only if it carries the label %s: \"true\"; its keys are token, or username and password, and optionally ca.crt", name, sluicev1.MetricsCredentialsLabel)
	}
	if p.has("region") {
		p.note("region", NotCarried, "a CloudWatch setting: Sluice queries Prometheus only")
	}
	query, _ := spec.str("query")
	mt.Spec.Query = templateQuery(spec, query)
	m, err := toMap(mt)
	if err != nil {
		return nil, err
	}
	return []map[string]any{m}, nil
}

var variableRef = regexp.MustCompile(`\{\{\s*variables\.([A-Za-z0-9_]+)\s*\}\}`)
var ingressRef = regexp.MustCompile(`\{\{\s*ingress\s*\}\}`)

// templateQuery rewrites the parts of a Flagger query template that Sluice
// reads differently: Sluice takes {{ namespace }}, {{ target }} and the
// like as they are, and variables as {{ .variables.NAME }}.
func templateQuery(spec *reader, q string) string {
	if variableRef.MatchString(q) {
		q = variableRef.ReplaceAllString(q, "{{ .variables.$1 }}")
		spec.note("query", Changed, "{{ variables.NAME }} became {{ .variables.NAME }}, Sluice's form; the values come from each metric's templateVariables, converted to variables")
	}
	if ingressRef.MatchString(q) {
		spec.note("query", NotCarried, "{{ ingress }}: Sluice has no ingress reference, and the query fails (an Error verdict) until it is edited")
	}
	return q
}
