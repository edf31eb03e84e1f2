package graphite

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/metricservers"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

// TestGraphiteAnswersAgainstARealServer sends points to Debian's
// carbon-cache and reads them back through graphite-web's render API.
func TestGraphiteAnswersAgainstARealServer(t *testing.T) {
	srv := metricservers.StartGraphite(t)
	now := time.Now().Unix()
	srv.Send(t,
		fmt.Sprintf("shop.web-1.errors 1 %d", now-3), fmt.Sprintf("shop.web-1.errors 2 %d", now-2),
		fmt.Sprintf("shop.web-2.errors 5 %d", now-2))
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "graphite", Address: srv.URL}, nil))
	if err != nil {
		t.Fatal(err)
	}
	// carbon-cache creates the whisper files asynchronously.
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := p.Query(t.Context(), "sumSeries(shop.*.errors)")
		if err == nil && v == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sumSeries(shop.*.errors) = %v, %v; want 7", v, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, tc := range []struct {
		name, target string
		want         float64
		err          string
		noData       bool
	}{
		{name: "the last non-null point of one series", target: "shop.web-1.errors", want: 2},
		{name: "a target matching nothing is no data", target: "shop.nope.errors", err: "no series", noData: true},
		{name: "two series are an error", target: "shop.*.errors", err: "2 series"},
		{name: "an unknown function is an error", target: "nosuchfunction(shop.web-1.errors)", err: "graphite answered 400 Bad Request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Query(t.Context(), tc.target)
			switch {
			case tc.err == "" && (err != nil || v != tc.want):
				t.Fatalf("got %v, %v; want %v", v, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %v, %v; want an error containing %q", v, err, tc.err)
			case tc.noData != errors.Is(err, provider.ErrNoData):
				t.Fatalf("got %v, want no data %v", err, tc.noData)
			}
		})
	}
	t.Run("a series over a window, raw and summarized", func(t *testing.T) {
		sp := p.(provider.SeriesProvider)
		start, end := time.Unix(now-30, 0), time.Unix(now+1, 0)
		raw, err := sp.Series(t.Context(), "shop.web-1.errors", start, end, 0)
		if err != nil || !slices.Equal(raw, []float64{1, 2}) {
			t.Errorf("raw series %v, %v; want [1 2]", raw, err)
		}
		avg, err := sp.Series(t.Context(), "shop.web-1.errors", start, end, time.Minute)
		if err != nil || !slices.Equal(avg, []float64{1.5}) {
			t.Errorf("summarized series %v, %v; want [1.5]", avg, err)
		}
		if _, err := sp.Series(t.Context(), "shop.nope.errors", start, end, 0); !errors.Is(err, provider.ErrNoData) {
			t.Errorf("a target matching nothing: %v, want no data", err)
		}
	})
}

func TestGraphiteErrorShapes(t *testing.T) {
	providertest.Run(t, []providertest.Case{
		{Name: "only null points are no data", Answer: providertest.Answer{Body: `[{"target":"a","tags":{"name":"a"},"datapoints":[[null,1],[null,2]]}]`},
			Err: "null", NoData: true},
		{Name: "a 429 is the rate limit, never a pass", Answer: providertest.RateLimited, Err: "graphite rate limit reached (429 Too Many Requests); it asks to retry after 30"},
		{Name: "a 401 says the credentials were refused", Answer: providertest.Answer{Status: 401}, Err: "graphite refused the credentials (401 Unauthorized)"},
	}, "a", func(url string) (provider.Provider, error) {
		return New(providertest.Config(sluicev1.MetricProvider{Type: "graphite", Address: url}, map[string]string{"token": "t"}))
	})
}
