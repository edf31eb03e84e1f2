package analysis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/egress"
)

// DefaultQueryTimeout bounds one Prometheus query when no timeout is given.
const DefaultQueryTimeout = 10 * time.Second

// PrometheusOptions configure the Prometheus provider.
type PrometheusOptions struct {
	// Address is the Prometheus used by built-in metrics and by templates
	// without provider.address (the manager's --prometheus-address).
	Address string
	// Timeout bounds each query (DefaultQueryTimeout when zero).
	Timeout time.Duration
	// Gateway is the Gateway API implementation whose metrics the built-in
	// checks read for Rollouts routed through the Gateway API (envoy when
	// empty).
	Gateway GatewayFlavor
	// Transport is the base transport (a clone of http.DefaultTransport
	// when nil); TLS settings of a template are applied to a clone of it.
	Transport *http.Transport
	// Egress checks the connections to the addresses MetricTemplates choose
	// themselves (a provider.address other than Address): whoever writes a
	// template chooses where the manager sends its queries. Nil checks
	// nothing. Address is the operator's and is never checked; every
	// provider type other than prometheus is checked whatever its address.
	Egress *egress.Policy
	// Providers builds the providers of template types other than
	// prometheus (DefaultProviders when nil).
	Providers map[string]provider.Factory
	// ClusterSecretNamespace is where the credentials Secrets of
	// ClusterMetricTemplates are read (the manager's namespace); without it
	// a ClusterMetricTemplate cannot name a Secret.
	ClusterSecretNamespace string
	// Kube is a client for the external metrics API, with the manager's
	// identity (provider type kubernetes; kubernetes.NewRESTClient). Nil:
	// that type fails its checks saying so.
	Kube rest.Interface
}

// queryAPI is the part of the Prometheus HTTP API that Sluice uses.
type queryAPI interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, error)
	QueryRange(ctx context.Context, query string, r promv1.Range, opts ...promv1.Option) (model.Value, promv1.Warnings, error)
}

// Prometheus answers metric checks with instant Prometheus queries, and
// compare checks with range queries (query_range).
type Prometheus struct {
	reader client.Reader
	opts   PrometheusOptions
	base   *http.Transport
	// tenant is base for the addresses templates choose: checked by the
	// egress policy when there is one.
	tenant  *http.Transport
	defAPI  queryAPI // for the default address; nil without one
	newAPI  func(address string, rt http.RoundTripper) (queryAPI, error)
	timeout time.Duration
	// providers build the template providers other than Prometheus.
	providers map[string]provider.Factory
}

var _ SeriesQuerier = (*Prometheus)(nil)

// NewPrometheus returns the Prometheus provider. reader reads MetricTemplates
// and their Secrets; it must read Secrets with their data (in a manager, the
// API reader: the cache keeps Secrets' checksums only).
func NewPrometheus(reader client.Reader, opts PrometheusOptions) (*Prometheus, error) {
	switch opts.Gateway {
	case "", GatewayEnvoy, GatewayTraefik:
	default:
		return nil, fmt.Errorf("unknown gateway flavour %q: want envoy or traefik", opts.Gateway)
	}
	p := &Prometheus{reader: reader, opts: opts, timeout: opts.Timeout, newAPI: newHTTPAPI}
	if p.timeout <= 0 {
		p.timeout = DefaultQueryTimeout
	}
	p.providers = opts.Providers
	if p.providers == nil {
		p.providers = DefaultProviders()
	}
	p.base = opts.Transport
	if p.base == nil {
		p.base = http.DefaultTransport.(*http.Transport).Clone()
	}
	p.tenant = p.base
	if opts.Egress != nil {
		p.tenant = opts.Egress.Transport(p.base)
	}
	if opts.Address != "" {
		api, err := p.newAPI(opts.Address, p.base)
		if err != nil {
			return nil, fmt.Errorf("prometheus address %q: %w", opts.Address, err)
		}
		p.defAPI = api
	}
	return p, nil
}

func newHTTPAPI(address string, rt http.RoundTripper) (queryAPI, error) {
	c, err := promapi.NewClient(promapi.Config{Address: address, RoundTripper: rt})
	if err != nil {
		return nil, err
	}
	return promv1.NewAPI(c), nil
}

// Query implements Querier: it resolves the check to a query and a
// provider, runs the query and returns its single number. A template whose
// provider is not Prometheus goes to that provider (queryProvider).
func (p *Prometheus) Query(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck) (float64, error) {
	var tpl *metricTemplate
	if check.TemplateRef != nil {
		var err error
		if tpl, err = p.lookupTemplate(ctx, ro, check.TemplateRef); err != nil {
			return 0, err
		}
		if t := tpl.spec.Provider.Type; t != "" && t != sluicev1.ProviderPrometheus {
			return p.queryProvider(ctx, ro, check, tpl)
		}
	}
	query, api, done, err := p.resolve(ctx, ro, check, tpl, renderFor{})
	if err != nil {
		return 0, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// A zero time lets Prometheus evaluate at its own "now".
	val, _, err := api.Query(ctx, query, time.Time{}, promv1.WithTimeout(p.timeout))
	if err != nil {
		return 0, p.queryError(ctx, tpl, err)
	}
	return single(val)
}

// Series implements SeriesQuerier: it renders the check's template for one
// side, sampled every w.Step, and runs it over the window, as a range
// query for Prometheus or through the provider's Series for the others.
// A provider that cannot return a series is an error.
func (p *Prometheus) Series(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck, side Side, w Window) ([]float64, error) {
	if check.TemplateRef == nil {
		return nil, errors.New("compare needs a templateRef: built-in metrics are not compared")
	}
	tpl, err := p.lookupTemplate(ctx, ro, check.TemplateRef)
	if err != nil {
		return nil, err
	}
	f := renderFor{side: side, step: w.Step}
	if t := tpl.spec.Provider.Type; t != "" && t != sluicev1.ProviderPrometheus {
		return p.seriesProvider(ctx, ro, check, tpl, f, w)
	}
	query, api, done, err := p.resolve(ctx, ro, check, tpl, f)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	val, _, err := api.QueryRange(ctx, query, promv1.Range{Start: w.Start, End: w.End, Step: w.Step}, promv1.WithTimeout(p.timeout))
	if err != nil {
		return nil, p.queryError(ctx, tpl, err)
	}
	return series(val)
}

// queryError is the error of a failed Prometheus query.
func (p *Prometheus) queryError(ctx context.Context, tpl *metricTemplate, err error) error {
	var refused *egress.RefusedError
	if errors.As(err, &refused) && tpl != nil {
		// Fails the check, saying only what was refused and why (not the
		// HTTP client's wrappers around it).
		return fmt.Errorf("%s: provider.address: %w", tpl.name, refused)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("query timed out after %s: %w", p.timeout, err)
	}
	return fmt.Errorf("querying prometheus: %w", err)
}

// resolve returns the query of a check (of template tpl rendered for f, or
// built in when tpl is nil) and the API to run it against, with a function
// releasing that API's connections.
func (p *Prometheus) resolve(ctx context.Context, ro *sluicev1.Rollout, check sluicev1.MetricCheck, tpl *metricTemplate, f renderFor) (string, queryAPI, func(), error) {
	noop := func() {}
	if tpl == nil {
		q, err := BuiltinQuery(ro, check, p.opts.Gateway)
		if err != nil {
			return "", nil, noop, err
		}
		if p.defAPI == nil {
			return "", nil, noop, errors.New("no Prometheus address: the manager has no default (--prometheus-address) and built-in metrics use it")
		}
		return q, p.defAPI, noop, nil
	}
	q, err := render(tpl.spec.Query, ro, check, f)
	if err != nil {
		return "", nil, noop, fmt.Errorf("%s: %w", tpl.name, err)
	}
	prov := tpl.spec.Provider
	if prov.SecretRef == nil && len(prov.Headers) == 0 && !prov.InsecureSkipVerify &&
		(prov.Address == "" || prov.Address == p.opts.Address) {
		if p.defAPI == nil {
			return "", nil, noop, fmt.Errorf("%s has no provider.address and the manager has no default (--prometheus-address)", tpl.name)
		}
		return q, p.defAPI, noop, nil
	}
	api, done, err := p.apiFor(ctx, tpl)
	if err != nil {
		return "", nil, noop, fmt.Errorf("%s: %w", tpl.name, err)
	}
	return q, api, done, nil
}

// apiFor builds a client for a template's own provider settings.
func (p *Prometheus) apiFor(ctx context.Context, tpl *metricTemplate) (queryAPI, func(), error) {
	prov := tpl.spec.Provider
	addr := prov.Address
	base := p.tenant
	if addr == "" || addr == p.opts.Address {
		addr, base = p.opts.Address, p.base
	}
	if addr == "" {
		return nil, nil, errors.New("no provider.address and the manager has no default (--prometheus-address)")
	}
	creds, err := p.credentials(ctx, tpl)
	if err != nil {
		return nil, nil, err
	}
	var auth authHeader
	if creds != nil {
		if auth, err = authFromSecret(creds); err != nil {
			return nil, nil, err
		}
	}
	tr, err := templateTransport(base, prov, creds)
	if err != nil {
		return nil, nil, err
	}
	rt := &headerRoundTripper{next: tr, headers: prov.Headers, auth: auth, refuseRedirects: true}
	api, err := p.newAPI(addr, rt)
	if err != nil {
		return nil, nil, fmt.Errorf("address %q: %w", addr, err)
	}
	return api, tr.CloseIdleConnections, nil
}

// credentials reads the Secret a template names, from the template's
// namespace (the manager's for a ClusterMetricTemplate), and returns it
// when it may be sent to the provider; nil without a secretRef.
func (p *Prometheus) credentials(ctx context.Context, tpl *metricTemplate) (*corev1.Secret, error) {
	ref := tpl.spec.Provider.SecretRef
	if ref == nil {
		return nil, nil
	}
	if tpl.secretNamespace == "" {
		return nil, fmt.Errorf("provider.secretRef %s: the manager has no namespace to read a ClusterMetricTemplate's Secret from (--cluster-template-secret-namespace)", ref.Name)
	}
	sec := &corev1.Secret{}
	if err := p.reader.Get(ctx, client.ObjectKey{Namespace: tpl.secretNamespace, Name: ref.Name}, sec); err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", ref.Name, err)
	}
	if err := mayCarryCredentials(sec); err != nil {
		return nil, err
	}
	return sec, nil
}

// templateTransport is a clone of base with a template's TLS settings: the
// Secret's ca.crt trusted and provider.insecureSkipVerify.
func templateTransport(base *http.Transport, prov sluicev1.MetricProvider, sec *corev1.Secret) (*http.Transport, error) {
	tr := base.Clone()
	if sec != nil {
		if ca := sec.Data["ca.crt"]; len(ca) > 0 {
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(ca) {
				return nil, fmt.Errorf("Secret %s: ca.crt holds no PEM certificate", sec.Name)
			}
			tr.TLSClientConfig = tlsConfig(tr.TLSClientConfig)
			tr.TLSClientConfig.RootCAs = pool
		}
	}
	if prov.InsecureSkipVerify {
		tr.TLSClientConfig = tlsConfig(tr.TLSClientConfig)
		tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for by the MetricTemplate
	}
	return tr, nil
}

func tlsConfig(c *tls.Config) *tls.Config {
	if c == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c.Clone()
}

// mayCarryCredentials refuses a Secret that a MetricTemplate may not send to
// its provider: one that has not opted in with MetricsCredentialsLabel, and
// any service-account token. The template's author chooses the address, so
// without this check the manager would be a confused deputy handing any
// Secret of the namespace to whoever may write a MetricTemplate.
func mayCarryCredentials(sec *corev1.Secret) error {
	if sec.Type == corev1.SecretTypeServiceAccountToken {
		return fmt.Errorf("Secret %s is a service-account token (type %s): a MetricTemplate never sends one to its provider",
			sec.Name, corev1.SecretTypeServiceAccountToken)
	}
	if sec.Labels[sluicev1.MetricsCredentialsLabel] != "true" {
		return fmt.Errorf("Secret %s lacks the label %s: \"true\" that lets MetricTemplates use it as credentials",
			sec.Name, sluicev1.MetricsCredentialsLabel)
	}
	return nil
}

// authHeader is the value of the Authorization header, or empty.
type authHeader string

// authFromSecret reads `token` (bearer) or `username` and `password`
// (basic) from a Secret; a Secret with only `ca.crt` means no auth.
func authFromSecret(sec *corev1.Secret) (authHeader, error) {
	token, user, pass := sec.Data["token"], sec.Data["username"], sec.Data["password"]
	switch {
	case len(token) > 0 && (len(user) > 0 || len(pass) > 0):
		return "", fmt.Errorf("Secret %s has both token and username/password: keep one", sec.Name)
	case len(token) > 0:
		return authHeader("Bearer " + strings.TrimSpace(string(token))), nil
	case len(user) > 0 && len(pass) > 0:
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(string(user), string(pass))
		return authHeader(r.Header.Get("Authorization")), nil
	case len(user) > 0 || len(pass) > 0:
		return "", fmt.Errorf("Secret %s needs both username and password for basic auth", sec.Name)
	case len(sec.Data["ca.crt"]) > 0:
		return "", nil
	default:
		return "", fmt.Errorf("Secret %s has none of token, username/password or ca.crt", sec.Name)
	}
}

// headerRoundTripper adds a template's headers and credentials, and may
// turn a redirect into an error.
type headerRoundTripper struct {
	next    http.RoundTripper
	headers map[string]string
	auth    authHeader
	// refuseRedirects turns a 3xx answer into an error.
	refuseRedirects bool
}

func (h *headerRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	if h.auth != "" {
		r.Header.Set("Authorization", string(h.auth))
	}
	resp, err := h.next.RoundTrip(r)
	if !h.refuseRedirects || err != nil || resp.StatusCode < 300 || resp.StatusCode >= 400 || resp.StatusCode == http.StatusNotModified {
		return resp, err
	}
	// A redirect is an answer, not a second request: Prometheus' HTTP
	// client would follow it, with the template's headers, to wherever the
	// server says. (The other providers' client follows none itself.)
	_ = resp.Body.Close()
	return nil, fmt.Errorf("the provider answered %s to %s: redirects are not followed; point the address at the final URL",
		resp.Status, resp.Header.Get("Location"))
}

// single returns the one number of a query result: an instant vector with
// exactly one finite sample.
func single(val model.Value) (float64, error) {
	vec, ok := val.(model.Vector)
	switch {
	case val == nil:
		return 0, errors.New("the query returned nothing, want an instant vector with one sample")
	case !ok:
		return 0, fmt.Errorf("the query returned a %s, want an instant vector with one sample", val.Type())
	}
	metrics := make([]model.Metric, 0, len(vec))
	for _, s := range vec {
		metrics = append(metrics, s.Metric)
	}
	if err := one(metrics); err != nil {
		return 0, err
	}
	v := float64(vec[0].Value)
	switch {
	case math.IsNaN(v):
		return 0, fmt.Errorf("the query returned NaN (often 0/0: no requests in the window)")
	case math.IsInf(v, 0):
		return 0, fmt.Errorf("the query returned %v (a division by zero?)", v)
	}
	return v, nil
}

// series returns the values of a range query's result: a matrix with
// exactly one series, oldest first. NaN and infinite values are kept: the
// judge drops and counts them.
func series(val model.Value) ([]float64, error) {
	m, ok := val.(model.Matrix)
	switch {
	case val == nil:
		return nil, errors.New("the query returned nothing, want a range vector with one series")
	case !ok:
		return nil, fmt.Errorf("the query returned a %s, want a range vector with one series", val.Type())
	}
	metrics := make([]model.Metric, 0, len(m))
	for _, s := range m {
		metrics = append(metrics, s.Metric)
	}
	if err := one(metrics); err != nil {
		return nil, err
	}
	out := make([]float64, 0, len(m[0].Values))
	for _, p := range m[0].Values {
		out = append(out, float64(p.Value))
	}
	return out, nil
}

// one checks that a result has exactly one series: none is no data, more
// is an error naming a few of them.
func one(metrics []model.Metric) error {
	switch len(metrics) {
	case 0:
		return fmt.Errorf("the query returned no series: %w", ErrNoData)
	case 1:
		return nil
	}
	names := make([]string, 0, len(metrics))
	for _, m := range metrics {
		names = append(names, m.String())
	}
	sort.Strings(names)
	if len(names) > 3 {
		names = append(names[:3], "...")
	}
	return fmt.Errorf("the query returned %d series, want exactly one (aggregate it, e.g. with sum()): %s",
		len(metrics), strings.Join(names, ", "))
}
