package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/cloudwatch"
	"github.com/sluice-dev/sluice/pkg/analysis/datadog"
	"github.com/sluice-dev/sluice/pkg/analysis/dynatrace"
	"github.com/sluice-dev/sluice/pkg/analysis/graphite"
	"github.com/sluice-dev/sluice/pkg/analysis/influxdb"
	"github.com/sluice-dev/sluice/pkg/analysis/kubernetes"
	"github.com/sluice-dev/sluice/pkg/analysis/newrelic"
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

// queryProvider runs a check whose template names a provider other than
// Prometheus. Every such provider is reached through the egress-checked
// transport, with the template's TLS settings and headers, no redirects
// followed and the per-query timeout; its credentials come only from an
// opted-in Secret of the template's namespace.
func (p *Prometheus) queryProvider(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck, tpl *metricTemplate) (float64, error) {
	prov := tpl.spec.Provider
	factory, ok := p.providers[prov.Type]
	if !ok {
		return 0, fmt.Errorf("%s: provider type %q is not supported by this manager", tpl.name, prov.Type)
	}
	query, err := Render(tpl.spec.Query, ro, check)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", tpl.name, err)
	}
	cfg := provider.Config{Spec: prov, Timeout: p.timeout, Window: window(check), Kube: p.opts.Kube, Namespace: tpl.namespace}
	if cfg.Namespace == "" {
		// A ClusterMetricTemplate reads the Rollout's namespace.
		cfg.Namespace = ro.Namespace
	}
	if prov.Body != "" {
		if cfg.Body, err = Render(prov.Body, ro, check); err != nil {
			return 0, fmt.Errorf("%s: provider.body: %w", tpl.name, err)
		}
	}
	sec, err := p.credentials(ctx, tpl)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", tpl.name, err)
	}
	if sec != nil {
		cfg.Credentials = sec.Data
	}
	tr, err := templateTransport(p.tenant, prov, sec)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", tpl.name, err)
	}
	defer tr.CloseIdleConnections()
	cfg.HTTP = &http.Client{
		Transport:     &headerRoundTripper{next: tr, headers: prov.Headers},
		Timeout:       p.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	pr, err := factory(cfg)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", tpl.name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	v, err := pr.Query(ctx, query)
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return 0, fmt.Errorf("%s: provider.address: %w", tpl.name, refused)
	}
	if err != nil && !errors.Is(err, ErrNoData) {
		return 0, fmt.Errorf("%s: %w", tpl.name, err)
	}
	return v, err
}

// window is a check's query window: its interval, DefaultMetricInterval
// when unset.
func window(check sluicev1.MetricCheck) time.Duration {
	if check.Interval != nil && check.Interval.Duration > 0 {
		return check.Interval.Duration
	}
	return DefaultMetricInterval
}
