// Package kubernetes is the provider of the cluster's external metrics API
// (external.metrics.k8s.io/v1beta1, served by an adapter such as KEDA's or
// prometheus-adapter): the rendered query is a metric name with an optional
// label selector in braces, e.g. queue_messages_ready{queue=orders}; the
// value is the one item the API returns (none is no data, several an error
// asking for a narrower selector).
//
// It reads with the manager's own identity, so the namespace is never the
// template author's choice: a MetricTemplate reads its own namespace's
// external metrics, a ClusterMetricTemplate the Rollout's. It takes no
// address, credentials or headers. Reading a metric is a list in RBAC's
// terms (a collection path, the metric being the resource).
//
// It cannot answer compare checks: the API serves only the current value,
// so there is no series over a window to read (NoSeries says so).
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// Kubernetes reads external metrics.
type Kubernetes struct {
	cfg provider.Config
}

// New builds the provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	if cfg.Kube == nil {
		return nil, errors.New("provider type kubernetes: the manager has no client for the external metrics API")
	}
	if cfg.Namespace == "" {
		return nil, errors.New("provider type kubernetes: no namespace to read external metrics in")
	}
	return &Kubernetes{cfg: cfg}, nil
}

// queryForm is a metric name, then optionally a label selector in braces.
var queryForm = regexp.MustCompile(`^([a-zA-Z0-9_.:-]+)(?:\{(.*)\})?$`)

// parse splits a query into a metric name and a selector.
func parse(query string) (string, labels.Selector, error) {
	m := queryForm.FindStringSubmatch(strings.TrimSpace(query))
	if m == nil {
		return "", nil, fmt.Errorf("query %q: want a metric name, optionally with a label selector in braces, e.g. queue_messages_ready{queue=orders}", query)
	}
	sel, err := labels.Parse(m[2])
	if err != nil {
		return "", nil, fmt.Errorf("query %q: label selector: %w", query, err)
	}
	return m[1], sel, nil
}

// valueList is the documented ExternalMetricValueList (the fields Sluice
// reads).
type valueList struct {
	Items []struct {
		MetricName   string             `json:"metricName"`
		MetricLabels map[string]string  `json:"metricLabels"`
		Value        *resource.Quantity `json:"value"`
	} `json:"items"`
}

// Query implements provider.Provider.
func (k *Kubernetes) Query(ctx context.Context, query string) (float64, error) {
	name, sel, err := parse(query)
	if err != nil {
		return 0, err
	}
	// No retries: a throttled or failing API is reported, and the check
	// runs again at its next interval.
	req := k.cfg.Kube.Get().Namespace(k.cfg.Namespace).Resource(name).MaxRetries(0)
	if !sel.Empty() {
		req = req.Param("labelSelector", sel.String())
	}
	// Error, unlike Raw, decodes the Status of an error answer: the API
	// server's or the adapter's own words reach the check's message.
	res := req.Do(ctx)
	if err := res.Error(); err != nil {
		return 0, k.explain(ctx, name, err)
	}
	raw, _ := res.Raw() // its error is the one Error returned
	var list valueList
	if err := json.Unmarshal(raw, &list); err != nil {
		return 0, fmt.Errorf("the external metrics answer is not an ExternalMetricValueList: %w", err)
	}
	switch len(list.Items) {
	case 0:
		return 0, fmt.Errorf("external metric %s has no value in namespace %s: %w", name, k.cfg.Namespace, provider.ErrNoData)
	case 1:
		// A missing value is not 0: a check must not pass on it.
		if list.Items[0].Value == nil {
			return 0, fmt.Errorf("the external metrics answer for %s has an item without a value", name)
		}
		return list.Items[0].Value.AsApproximateFloat64(), nil
	default:
		return 0, fmt.Errorf("external metric %s has %d values in namespace %s, want one (narrow the label selector)",
			name, len(list.Items), k.cfg.Namespace)
	}
}

var _ provider.NoSeries = (*Kubernetes)(nil)

// NoSeries implements provider.NoSeries: the provider has no Series, since
// the external metrics API has no time range to ask for.
func (k *Kubernetes) NoSeries() string {
	return "the external metrics API serves only the current value, no history: use a threshold check, " +
		"or compare with a template of the adapter's own source, e.g. prometheus"
}

// explain words an API error.
func (k *Kubernetes) explain(ctx context.Context, name string, err error) error {
	switch {
	case apierrors.IsTooManyRequests(err):
		msg := "the external metrics API rate limit reached (429 Too Many Requests)"
		if s, ok := apierrors.SuggestsClientDelay(err); ok {
			msg += fmt.Sprintf("; it asks to retry after %d", s)
		}
		return errors.New(msg)
	case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
		return fmt.Errorf("the manager may not read external metrics in namespace %s (RBAC on external.metrics.k8s.io): %w", k.cfg.Namespace, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("external metric %s not found in namespace %s (is an external metrics adapter serving it?): %w", name, k.cfg.Namespace, err)
	case ctx.Err() != nil:
		return fmt.Errorf("external metrics query timed out after %s: %w", k.cfg.Timeout, err)
	}
	return fmt.Errorf("reading external metric %s: %w", name, err)
}

// NewRESTClient returns a client for external.metrics.k8s.io/v1beta1 with
// the given configuration (the manager's).
func NewRESTClient(c *rest.Config) (rest.Interface, error) {
	c = rest.CopyConfig(c)
	c.GroupVersion = &groupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = codecs
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}
