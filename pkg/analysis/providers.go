package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/cloudwatch"
	"github.com/sluice-dev/sluice/pkg/analysis/datadog"
	"github.com/sluice-dev/sluice/pkg/analysis/dynatrace"
	"github.com/sluice-dev/sluice/pkg/analysis/graphite"
	"github.com/sluice-dev/sluice/pkg/analysis/influxdb"
	"github.com/sluice-dev/sluice/pkg/analysis/kubernetes"
	"github.com/sluice-dev/sluice/pkg/analysis/newrelic"
	"github.com/sluice-dev/sluice/pkg/analysis/promql"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/web"
	"github.com/sluice-dev/sluice/pkg/egress"
)

// DefaultProviders are the provider types a MetricTemplate may name besides
// prometheus, each built by its own package.
func DefaultProviders() map[string]provider.Factory {
	return map[string]provider.Factory{
		sluicev1.ProviderWeb:        web.New,
		sluicev1.ProviderDatadog:    datadog.New,
		sluicev1.ProviderNewRelic:   newrelic.New,
		sluicev1.ProviderDynatrace:  dynatrace.New,
		sluicev1.ProviderCloudWatch: cloudwatch.New,
		sluicev1.ProviderInfluxDB:   influxdb.New,
		sluicev1.ProviderGraphite:   graphite.New,
		sluicev1.ProviderKubernetes: kubernetes.New,
	}
}

// windowProviders are the provider types that query a time range of the
// check's window (provider.Config.Window) whatever their query says.
var windowProviders = []string{
	sluicev1.ProviderDatadog, sluicev1.ProviderCloudWatch, sluicev1.ProviderDynatrace, sluicev1.ProviderGraphite,
}

// queryLookbacks read how far back a provider's query reads from its
// rendered text, for the providers whose query carries its own time range.
var queryLookbacks = map[string]func(string) (time.Duration, error){
	sluicev1.ProviderNewRelic: newrelic.Lookback,
	sluicev1.ProviderInfluxDB: influxdb.Lookback,
}

// Lookback implements LookbackReader: how far back from now a check's
// query reads.
//   - A Prometheus query (built in or a template's, as rendered) reads as
//     far back as its range selectors, subqueries and offsets say, however
//     the window got there: [{{ .interval }}] or [5m] written out. Text the
//     scan cannot read is taken to read the check's window.
//   - A provider that queries a time range of the window (Datadog,
//     CloudWatch, Dynatrace, Graphite) reads the window whatever its text.
//   - A New Relic or InfluxDB threshold query carries its time range: as
//     far back as its SINCE (an hour without one) or its now() - <duration>
//     says. Text the scan cannot read is taken to read the check's window.
//   - Any other provider's query (web, kubernetes) reads the window when
//     its query or body renders otherwise for another .interval, and
//     nothing before the latest value otherwise.
func (p *Prometheus) Lookback(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck) (time.Duration, error) {
	if check.TemplateRef == nil {
		q, err := BuiltinQuery(ro, check, p.opts.Gateway)
		if err != nil {
			return 0, err
		}
		return promqlLookback(q, check), nil
	}
	tpl, err := p.lookupTemplate(ctx, ro, check.TemplateRef)
	if err != nil {
		return 0, err
	}
	switch typ := tpl.spec.Provider.Type; {
	case typ == "" || typ == sluicev1.ProviderPrometheus:
		q, err := render(tpl.spec.Query, ro, check, renderFor{})
		if err != nil {
			return 0, err
		}
		return promqlLookback(q, check), nil
	case slices.Contains(windowProviders, typ):
		return window(check), nil
	case queryLookbacks[typ] != nil && check.Compare == nil:
		// A compare check's series is read in buckets of its step
		// within the window (the range written into the query bounds
		// the series, not each sample): the rule below.
		q, err := render(tpl.spec.Query, ro, check, renderFor{})
		if err != nil {
			return 0, err
		}
		d, err := queryLookbacks[typ](q)
		if err != nil {
			return window(check), nil
		}
		return d, nil
	}
	other := check
	other.Interval = &metav1.Duration{Duration: window(check) + time.Second}
	for _, text := range []string{tpl.spec.Query, tpl.spec.Provider.Body} {
		a, err := render(text, ro, check, renderFor{})
		if err != nil {
			return 0, err
		}
		b, err := render(text, ro, other, renderFor{})
		if err != nil {
			return 0, err
		}
		if a != b {
			return window(check), nil
		}
	}
	return 0, nil
}

// promqlLookback is how far back a rendered PromQL query reads; a query
// the scan cannot read is taken to read the check's window (if it is not
// PromQL at all, Prometheus says so when it is asked).
func promqlLookback(query string, check sluicev1.MetricCheck) time.Duration {
	d, err := promql.Lookback(query)
	if err != nil {
		return window(check)
	}
	return d
}

// queryProvider runs a check whose template names a provider other than
// Prometheus. Every such provider is reached through the egress-checked
// transport, with the template's TLS settings and headers, no redirects
// followed and the per-query timeout; its credentials come only from an
// opted-in Secret of the template's namespace.
func (p *Prometheus) queryProvider(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck, tpl *metricTemplate) (float64, error) {
	pr, query, done, err := p.buildProvider(ctx, ro, check, tpl, renderFor{}, window(check))
	if err != nil {
		return 0, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	v, err := pr.Query(ctx, query)
	return v, providerError(tpl, err)
}

// seriesProvider runs one side of a compare check whose template names a
// provider other than Prometheus, through its Series; a provider without
// one cannot be compared.
func (p *Prometheus) seriesProvider(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck, tpl *metricTemplate, f renderFor, w Window) ([]float64, error) {
	pr, query, done, err := p.buildProvider(ctx, ro, check, tpl, f, w.Step)
	if err != nil {
		return nil, err
	}
	defer done()
	sp, ok := pr.(provider.SeriesProvider)
	if !ok {
		why := ""
		if n, ok := pr.(provider.NoSeries); ok {
			why = " (" + n.NoSeries() + ")"
		}
		return nil, fmt.Errorf("%s: provider %s cannot return a series%s; compare needs one", tpl.name, tpl.spec.Provider.Type, why)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	v, err := sp.Series(ctx, query, w.Start, w.End, w.Step)
	return v, providerError(tpl, err)
}

// providerError names the template in a provider's error, except no data.
func providerError(tpl *metricTemplate, err error) error {
	var refused *egress.RefusedError
	switch {
	case errors.As(err, &refused):
		return fmt.Errorf("%s: provider.address: %w", tpl.name, refused)
	case err != nil && !errors.Is(err, ErrNoData):
		return fmt.Errorf("%s: %w", tpl.name, err)
	}
	return err
}

// buildProvider renders a check's query (and body) for f and builds its
// template's provider, with a function releasing its connections.
// windowLen is what the provider sees as its window.
func (p *Prometheus) buildProvider(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck, tpl *metricTemplate, f renderFor, windowLen time.Duration) (provider.Provider, string, func(), error) {
	prov := tpl.spec.Provider
	factory, ok := p.providers[prov.Type]
	if !ok {
		return nil, "", nil, fmt.Errorf("%s: provider type %q is not supported by this manager", tpl.name, prov.Type)
	}
	query, err := render(tpl.spec.Query, ro, check, f)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", tpl.name, err)
	}
	cfg := provider.Config{Spec: prov, Timeout: p.timeout, Window: windowLen, Kube: p.opts.Kube, Namespace: tpl.namespace}
	if cfg.Namespace == "" {
		// A ClusterMetricTemplate reads the Rollout's namespace.
		cfg.Namespace = ro.Namespace
	}
	if prov.Body != "" {
		if cfg.Body, err = render(prov.Body, ro, check, f); err != nil {
			return nil, "", nil, fmt.Errorf("%s: provider.body: %w", tpl.name, err)
		}
	}
	sec, err := p.credentials(ctx, tpl)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", tpl.name, err)
	}
	if sec != nil {
		cfg.Credentials = sec.Data
	}
	tr, err := templateTransport(p.tenant, prov, sec)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", tpl.name, err)
	}
	cfg.HTTP = &http.Client{
		Transport:     &headerRoundTripper{next: tr, headers: prov.Headers},
		Timeout:       p.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	pr, err := factory(cfg)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, "", nil, fmt.Errorf("%s: %w", tpl.name, err)
	}
	return pr, query, tr.CloseIdleConnections, nil
}

// window is a check's query window: its interval, DefaultMetricInterval
// when unset.
func window(check sluicev1.MetricCheck) time.Duration {
	if check.Interval != nil && check.Interval.Duration > 0 {
		return check.Interval.Duration
	}
	return DefaultMetricInterval
}
