package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Load sends requests through the Gateway at a fixed rate and records, for
// each answer, when it came, which version answered (the X-Version header)
// and the status code, so that the traffic split can be measured by
// counting responses.
type Load struct {
	URL    string
	Host   string
	Header http.Header

	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	hits []Hit
}

// Hit is one answered (or failed) request.
type Hit struct {
	At      time.Time // when the answer came
	Version string    // X-Version ("" when no backend answered)
	Message string    // X-Message (the app's MESSAGE)
	Code    int       // 0 on a transport error
	Err     string    // the transport error
}

// StartLoad sends rate requests per second to the Gateway with the given
// Host header (and extra headers) until Stop.
func (c *Cluster) StartLoad(host string, rate int, header http.Header) *Load {
	l := &Load{URL: c.GatewayURL + "/", Host: host, Header: header}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	l.run(rate, func() Hit { return l.one(hc) })
	return l
}

// GRPCVersionMethod is the test app's unary gRPC method that answers its
// version (e2e/testapp).
const GRPCVersionMethod = "/sluice.e2e.Version/Get"

// StartGRPCLoad calls the test app's GRPCVersionMethod through the Gateway
// rate times per second, with host as the authority, until Stop. A call
// that ends with status OK is recorded with code 200, any other with 500
// and the status in Err; the version comes from the answer, or from the
// x-version header of a failed call.
func (c *Cluster) StartGRPCLoad(host string, rate int) (*Load, error) {
	conn, err := grpc.NewClient(strings.TrimPrefix(c.GatewayURL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(host))
	if err != nil {
		return nil, err
	}
	l := &Load{URL: c.GatewayURL + GRPCVersionMethod, Host: host}
	l.run(rate, func() Hit {
		// Not cancelled by Stop: a call in flight then is answered, as
		// an HTTP request in flight is.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var hdr metadata.MD
		out := &wrapperspb.StringValue{}
		err := conn.Invoke(ctx, GRPCVersionMethod, &emptypb.Empty{}, out, grpc.Header(&hdr))
		h := Hit{At: time.Now(), Version: out.GetValue(), Code: http.StatusOK}
		if err != nil {
			h.Code, h.Err = http.StatusInternalServerError, status.Convert(err).String()
			if v := hdr.Get("x-version"); len(v) > 0 {
				h.Version = v[0]
			}
		}
		return h
	})
	go func() { <-l.done; _ = conn.Close() }()
	return l, nil
}

// run sends one request (one) rate times per second, at most 64 at once,
// recording each answer, until Stop.
func (l *Load) run(rate int, one func() Hit) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	gap := time.Second / time.Duration(rate)
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		t := time.NewTicker(gap)
		defer t.Stop()
		sem := make(chan struct{}, 64)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case sem <- struct{}{}:
			default:
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				l.record(one())
			}()
		}
	}()
}

func (l *Load) one(hc *http.Client) Hit {
	req, _ := http.NewRequest(http.MethodGet, l.URL, nil)
	req.Host = l.Host
	for k, v := range l.Header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Hit{At: time.Now(), Err: err.Error()}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return Hit{At: time.Now(), Version: resp.Header.Get("X-Version"), Message: resp.Header.Get("X-Message"), Code: resp.StatusCode}
}

func (l *Load) record(h Hit) {
	l.mu.Lock()
	l.hits = append(l.hits, h)
	l.mu.Unlock()
}

// Stop ends the load and waits for the requests in flight.
func (l *Load) Stop() {
	l.cancel()
	<-l.done
}

// Hits returns the answers that came in [from, to).
func (l *Load) Hits(from, to time.Time) []Hit {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Hit
	for _, h := range l.hits {
		if !h.At.Before(from) && h.At.Before(to) {
			out = append(out, h)
		}
	}
	return out
}

// Split counts the answers per version in [from, to).
type Split struct {
	Total     int
	ByVersion map[string]int
	Errors    int // 5xx and transport errors
	// Codes counts the answers without a version by status code (0: no answer).
	Codes map[int]int
}

// Share is the fraction of the answers that version gave, in percent.
func (s Split) Share(version string) float64 {
	if s.Total == 0 {
		return 0
	}
	return 100 * float64(s.ByVersion[version]) / float64(s.Total)
}

func (s Split) String() string {
	keys := make([]string, 0, len(s.ByVersion))
	for k := range s.ByVersion {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := fmt.Sprintf("%d answers", s.Total)
	for _, k := range keys {
		name := k
		if name == "" {
			name = "(none)"
		}
		out += fmt.Sprintf(", %s %.1f%%", name, s.Share(k))
	}
	if s.Errors > 0 {
		out += fmt.Sprintf(", %d errors", s.Errors)
	}
	if len(s.Codes) > 0 {
		out += fmt.Sprintf(" (codes without a version: %v)", s.Codes)
	}
	return out
}

// SplitBetween measures the split of the answers in [from, to) by version.
func (l *Load) SplitBetween(from, to time.Time) Split {
	return l.SplitBy(from, to, func(h Hit) string { return h.Version })
}

// SplitBy measures the split of the answers in [from, to) by key(hit).
func (l *Load) SplitBy(from, to time.Time, key func(Hit) string) Split {
	s := Split{ByVersion: map[string]int{}, Codes: map[int]int{}}
	for _, h := range l.Hits(from, to) {
		s.Total++
		s.ByVersion[key(h)]++
		if h.Version == "" {
			s.Codes[h.Code]++
		}
		if h.Code == 0 || h.Code >= 500 {
			s.Errors++
		}
	}
	return s
}

// FirstFrom returns when version first answered at or after t (zero when
// it did not).
func (l *Load) FirstFrom(version string, t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hits {
		if h.Version == version && !h.At.Before(t) {
			return h.At
		}
	}
	return time.Time{}
}

// LastOf returns when version last answered (zero when it never did).
func (l *Load) LastOf(version string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.hits) - 1; i >= 0; i-- {
		if l.hits[i].Version == version {
			return l.hits[i].At
		}
	}
	return time.Time{}
}

// PromQuery runs an instant query against the cluster's Prometheus and
// returns the value of a single-sample answer (ok false on no data).
func (c *Cluster) PromQuery(ctx context.Context, q string) (float64, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.PrometheusURL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, false, err
	}
	if body.Status != "success" {
		return 0, false, fmt.Errorf("query %q: %s", q, body.Error)
	}
	if len(body.Data.Result) != 1 || len(body.Data.Result[0].Value) != 2 {
		return 0, false, nil
	}
	v, err := strconv.ParseFloat(fmt.Sprint(body.Data.Result[0].Value[1]), 64)
	return v, err == nil, err
}

// PromSeries returns the label sets of the series a query answers.
func (c *Cluster) PromSeries(ctx context.Context, q string) ([]map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.PrometheusURL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, r := range body.Data.Result {
		out = append(out, r.Metric)
	}
	return out, nil
}
