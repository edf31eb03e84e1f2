// Package web is the generic JSON-over-HTTP metrics provider: the rendered
// query is a path (and query string) resolved against provider.address, the
// answer is JSON, and provider.jsonPath selects the one number in it.
//
// GET is the default; with method POST the rendered provider.body is sent
// (as application/json unless provider.headers set a Content-Type). The
// Secret's `token` is sent as a bearer token, `username` and `password` as
// basic auth.
//
// For a compare check (provider.SeriesProvider) the JSONPath selects the
// series instead: an array of numbers, or several numbers, oldest first.
package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/util/jsonpath"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// Web queries a JSON HTTP endpoint.
type Web struct {
	cfg    provider.Config
	base   *url.URL
	path   *jsonpath.JSONPath
	method string
	auth   string
}

// New builds the web provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	base, err := url.Parse(cfg.Spec.Address)
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, errors.New("provider type web needs provider.address, an absolute http or https URL")
	}
	expr := strings.TrimSpace(cfg.Spec.JSONPath)
	if expr == "" {
		return nil, errors.New("provider type web needs provider.jsonPath, e.g. {.data.value}")
	}
	if !strings.HasPrefix(expr, "{") {
		expr = "{" + expr + "}"
	}
	jp := jsonpath.New("value").AllowMissingKeys(true)
	if err := jp.Parse(expr); err != nil {
		return nil, fmt.Errorf("provider.jsonPath %q: %w", cfg.Spec.JSONPath, err)
	}
	auth, err := cfg.AuthHeader()
	if err != nil {
		return nil, err
	}
	method := cfg.Spec.Method
	if method == "" {
		method = http.MethodGet
	}
	if method != http.MethodGet && method != http.MethodPost {
		return nil, fmt.Errorf("provider.method %q: want GET or POST", method)
	}
	return &Web{cfg: cfg, base: base, path: jp, method: method, auth: auth}, nil
}

// Query implements provider.Provider.
func (w *Web) Query(ctx context.Context, query string) (float64, error) {
	doc, err := w.fetch(ctx, query)
	if err != nil {
		return 0, err
	}
	return w.value(doc)
}

// fetch sends the request of a rendered query and returns the JSON answer.
func (w *Web) fetch(ctx context.Context, query string) (any, error) {
	target, err := w.target(query)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if w.method == http.MethodPost {
		body = bytes.NewReader([]byte(w.cfg.Body))
	}
	req, err := http.NewRequestWithContext(ctx, w.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if w.method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if w.auth != "" {
		req.Header.Set("Authorization", w.auth)
	}
	raw, err := w.cfg.Do(req, "the web provider")
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("the answer is not JSON: %w", err)
	}
	return doc, nil
}

// target resolves the rendered query against the address; it may not leave
// the address' scheme and host.
func (w *Web) target(query string) (string, error) {
	ref, err := url.Parse(strings.TrimSpace(query))
	if err != nil {
		return "", fmt.Errorf("the rendered query is not a URL path: %w", err)
	}
	u := w.base.ResolveReference(ref)
	if u.Scheme != w.base.Scheme || u.Host != w.base.Host {
		return "", fmt.Errorf("the rendered query leads to %s://%s: a web query is a path on provider.address (%s)", u.Scheme, u.Host, w.base.Host)
	}
	return u.String(), nil
}

// selected are the values the JSONPath selects in doc.
func (w *Web) selected(doc any) ([]any, error) {
	results, err := w.path.FindResults(doc)
	if err != nil {
		return nil, fmt.Errorf("provider.jsonPath %s: %w", w.cfg.Spec.JSONPath, err)
	}
	var found []any
	for _, rs := range results {
		for _, r := range rs {
			if r.IsValid() && r.CanInterface() {
				found = append(found, r.Interface())
			}
		}
	}
	return found, nil
}

// value is the one number the JSONPath selects.
func (w *Web) value(doc any) (float64, error) {
	found, err := w.selected(doc)
	if err != nil {
		return 0, err
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("provider.jsonPath %s selects nothing in the answer: %w", w.cfg.Spec.JSONPath, provider.ErrNoData)
	case 1:
	default:
		return 0, fmt.Errorf("provider.jsonPath %s selects %d values, want exactly one", w.cfg.Spec.JSONPath, len(found))
	}
	if found[0] == nil {
		return 0, fmt.Errorf("provider.jsonPath %s selects null: %w", w.cfg.Spec.JSONPath, provider.ErrNoData)
	}
	return w.number(found[0])
}

// number reads a selected value: a number or a string holding one.
func (w *Web) number(v any) (float64, error) {
	switch v := v.(type) {
	case float64:
		return v, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("provider.jsonPath %s selects the string %q, not a number", w.cfg.Spec.JSONPath, v)
		}
		return f, nil
	default:
		return 0, fmt.Errorf("provider.jsonPath %s selects a %T, want a number", w.cfg.Spec.JSONPath, v)
	}
}

var _ provider.SeriesProvider = (*Web)(nil)

// Series implements provider.SeriesProvider for compare checks: the
// numbers the JSONPath selects, one array of them ({.data.values}) or
// several ({.points[*].value}), in the answer's order, which must be
// oldest first; nulls are skipped. The endpoint chooses the window: start,
// end and step are not sent (the query's {{ .interval }} is the step), so
// the path must ask for the same span on both sides.
func (w *Web) Series(ctx context.Context, query string, _, _ time.Time, _ time.Duration) ([]float64, error) {
	doc, err := w.fetch(ctx, query)
	if err != nil {
		return nil, err
	}
	found, err := w.selected(doc)
	if err != nil {
		return nil, err
	}
	if len(found) == 1 {
		if list, ok := found[0].([]any); ok {
			found = list
		}
	}
	var out []float64
	for _, v := range found {
		switch v.(type) {
		case nil:
			continue
		case []any:
			return nil, fmt.Errorf("provider.jsonPath %s selects arrays, not numbers; select the numbers themselves, e.g. {.values[*][1]} of [time, value] pairs",
				w.cfg.Spec.JSONPath)
		case map[string]any:
			return nil, fmt.Errorf("provider.jsonPath %s selects objects, not numbers; select their number field, e.g. {.points[*].value}",
				w.cfg.Spec.JSONPath)
		}
		f, err := w.number(v)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("provider.jsonPath %s selects no number in the answer: %w", w.cfg.Spec.JSONPath, provider.ErrNoData)
	}
	return out, nil
}
