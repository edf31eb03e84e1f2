package cloudwatch

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/analysis/provider"
	"github.com/sluice-dev/sluice/pkg/analysis/provider/providertest"
)

var keys = map[string]string{"aws-access-key-id": "AKIDEXAMPLE", "aws-secret-access-key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}

// answer is a GetMetricData answer as the SDK's default protocol (Smithy
// RPC v2 CBOR) carries it; its fields are those of the documented
// GetMetricData response.
type answer struct {
	status  int
	headers map[string]string
	body    cbor.Map
}

func result(status string, values ...float64) cbor.Map {
	ts, vs := cbor.List{}, cbor.List{}
	for i, v := range values {
		ts = append(ts, &cbor.Tag{ID: 1, Value: cbor.Float64(1700000000 - 60*i)})
		vs = append(vs, cbor.Float64(v))
	}
	return cbor.Map{"Id": cbor.String("sluice"), "Label": cbor.String("errors"), "Timestamps": ts, "Values": vs, "StatusCode": cbor.String(status)}
}

func ok(results ...cbor.Map) answer {
	list := cbor.List{}
	for _, r := range results {
		list = append(list, r)
	}
	return answer{status: 200, body: cbor.Map{"MetricDataResults": list, "Messages": cbor.List{}}}
}

func apiError(status int, code, msg string) answer {
	return answer{status: status, headers: map[string]string{"X-Amzn-Query-Error": code + ";Sender"},
		body: cbor.Map{"__type": cbor.String("com.amazonaws.cloudwatch#" + code), "message": cbor.String(msg)}}
}

func server(t *testing.T, a answer, seen func(*http.Request, []byte)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if seen != nil {
			seen(r, body)
		}
		w.Header().Set("Content-Type", "application/cbor")
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write(cbor.Encode(a.body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func build(t *testing.T, address string) provider.Provider {
	p, err := New(providertest.Config(sluicev1.MetricProvider{Type: "cloudwatch", Region: "eu-west-1", Address: address}, keys))
	if err != nil {
		t.Fatal(err)
	}
	p.(*CloudWatch).now = func() time.Time { return time.Unix(1700000030, 0) }
	return p
}

func TestCloudWatchReadsTheNewestPointOfTheOneResult(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer answer
		want   float64
		err    string
		noData bool
	}{
		{name: "the newest point comes first", answer: ok(result("Complete", 3, 2, 1)), want: 3},
		{name: "no points is no data", answer: ok(result("Complete")), err: "no datapoints", noData: true},
		{name: "no result is no data", answer: ok(), err: "no result", noData: true},
		{name: "two results are an error", answer: ok(result("Complete", 1), result("Complete", 2)), err: "2 results, want one"},
		{name: "partial data is an error", answer: ok(result("PartialData", 1)), err: "status PartialData, want Complete"},
		{name: "throttling is the rate limit, never a pass", answer: apiError(400, "Throttling", "Rate exceeded"),
			err: "cloudwatch rate limit reached (Throttling 400 Bad Request)"},
		{name: "a 429 with Retry-After is the rate limit", answer: func() answer {
			a := apiError(429, "Throttling", "Rate exceeded")
			a.headers["Retry-After"] = "7"
			return a
		}(), err: "cloudwatch rate limit reached (Throttling 429 Too Many Requests); it asks to retry after 7"},
		{name: "a bad key is refused credentials", answer: apiError(403, "InvalidClientTokenId", "The security token included in the request is invalid."),
			err: "cloudwatch refused the credentials (InvalidClientTokenId 403 Forbidden)"},
		{name: "a bad expression is an error", answer: apiError(400, "InvalidParameterValue", "Error in expression 'sluice': Unrecognized token"),
			err: "InvalidParameterValue: Error in expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := server(t, tc.answer, nil)
			v, err := build(t, srv.URL).Query(t.Context(), `SELECT SUM(HTTPCode_Target_5XX_Count) FROM "AWS/ApplicationELB"`)
			switch {
			case tc.err == "" && (err != nil || v != tc.want):
				t.Fatalf("got %v, %v; want %v", v, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %v, %v; want an error containing %q", v, err, tc.err)
			case tc.noData != (err != nil && strings.Contains(err.Error(), provider.ErrNoData.Error())):
				t.Fatalf("got %v, want no data %v", err, tc.noData)
			}
		})
	}
}

func TestCloudWatchSignsWithSigV4AndAsksForTheWindow(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := server(t, ok(result("Complete", 1)), func(r *http.Request, b []byte) { got, body = r, b })
	if _, err := build(t, srv.URL).Query(t.Context(), "SUM(METRICS())"); err != nil {
		t.Fatal(err)
	}
	auth := got.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(auth, "/eu-west-1/monitoring/aws4_request, SignedHeaders=") {
		t.Errorf("Authorization %q, want a SigV4 signature for eu-west-1 monitoring", auth)
	}
	if !strings.HasSuffix(got.URL.Path, "/GetMetricData") {
		t.Errorf("path %s", got.URL.Path)
	}
	v, err := cbor.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	in := v.(cbor.Map)
	q := in["MetricDataQueries"].(cbor.List)[0].(cbor.Map)
	if q["Expression"] != cbor.String("SUM(METRICS())") || q["Period"] != cbor.Uint(300) {
		t.Errorf("query %v", q)
	}
}

func TestCloudWatchNeedsKeysNeverTheManagersIdentity(t *testing.T) {
	_, err := New(providertest.Config(sluicev1.MetricProvider{Type: "cloudwatch", Region: "eu-west-1"}, nil))
	if err == nil || !strings.Contains(err.Error(), `needs provider.secretRef with the key "aws-access-key-id"`) {
		t.Errorf("got %v", err)
	}
}

func TestPeriodCoversTheWindowInWholeMinutes(t *testing.T) {
	for in, want := range map[time.Duration]int32{30 * time.Second: 60, time.Minute: 60, 90 * time.Second: 120, 5 * time.Minute: 300} {
		if got := period(in); got != want {
			t.Errorf("period(%s) = %d, want %d", in, got, want)
		}
	}
}

// ascending is a result whose points are one minute apart from
// 1700000000, oldest first, as TimestampAscending returns them.
func ascending(status string, from int, values ...float64) cbor.Map {
	ts, vs := cbor.List{}, cbor.List{}
	for i, v := range values {
		ts = append(ts, &cbor.Tag{ID: 1, Value: cbor.Float64(1700000000 + 60*(from+i))})
		vs = append(vs, cbor.Float64(v))
	}
	return cbor.Map{"Id": cbor.String("sluice"), "Label": cbor.String("latency"), "Timestamps": ts, "Values": vs, "StatusCode": cbor.String(status)}
}

// withToken is a page that says more follows under token.
func withToken(a answer, token string) answer {
	a.body["NextToken"] = cbor.String(token)
	return a
}

// pages answers each request with the next answer (the last one again
// when they run out) and records the requests' decoded bodies.
func pages(t *testing.T, answers []answer, bodies *[]cbor.Map) *httptest.Server {
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if v, err := cbor.Decode(raw); err == nil {
			*bodies = append(*bodies, v.(cbor.Map))
		}
		a := answers[min(n, len(answers)-1)]
		n++
		w.Header().Set("Content-Type", "application/cbor")
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write(cbor.Encode(a.body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCloudWatchSeriesReadsTheOneResultOldestFirstAcrossPages(t *testing.T) {
	start, end := time.Unix(1700000000, 0), time.Unix(1700000300, 0)
	for _, tc := range []struct {
		name    string
		answers []answer
		want    []float64
		err     string
		noData  bool
	}{
		{name: "one complete page", answers: []answer{ok(ascending("Complete", 0, 1, 2, 3))}, want: []float64{1, 2, 3}},
		{name: "partial data follows NextToken", answers: []answer{
			withToken(ok(ascending("PartialData", 0, 1, 2)), "page-2"), ok(ascending("Complete", 2, 3, 4))}, want: []float64{1, 2, 3, 4}},
		{name: "no points is no data", answers: []answer{ok(ascending("Complete", 0))},
			err: "cloudwatch returned no datapoints between 2023-11-14T22:13:20Z and 2023-11-14T22:18:20Z", noData: true},
		{name: "no result is no data", answers: []answer{ok()}, err: "no datapoints", noData: true},
		{name: "two results are an error", answers: []answer{ok(ascending("Complete", 0, 1), ascending("Complete", 0, 2))}, err: "2 results, want one"},
		{name: "partial data without a NextToken is an error", answers: []answer{ok(ascending("PartialData", 0, 1))},
			err: "PartialData without a NextToken"},
		{name: "an internal error status is an error", answers: []answer{ok(ascending("InternalError", 0, 1))}, err: "status InternalError, want Complete"},
		{name: "a NextToken without end is an error", answers: []answer{withToken(ok(ascending("PartialData", 0, 1)), "again")},
			err: "still had a NextToken after 10 pages"},
		{name: "a 429 with Retry-After is the rate limit", answers: []answer{func() answer {
			a := apiError(429, "Throttling", "Rate exceeded")
			a.headers["Retry-After"] = "7"
			return a
		}()}, err: "cloudwatch rate limit reached (Throttling 429 Too Many Requests); it asks to retry after 7"},
		{name: "throttling on the second page is the rate limit, never a pass", answers: []answer{
			withToken(ok(ascending("PartialData", 0, 1)), "page-2"), apiError(400, "Throttling", "Rate exceeded")},
			err: "cloudwatch rate limit reached (Throttling 400 Bad Request)"},
		{name: "a bad key is refused credentials", answers: []answer{apiError(403, "InvalidClientTokenId", "The security token included in the request is invalid.")},
			err: "cloudwatch refused the credentials (InvalidClientTokenId 403 Forbidden)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bodies []cbor.Map
			srv := pages(t, tc.answers, &bodies)
			got, err := build(t, srv.URL).(provider.SeriesProvider).Series(t.Context(), "AVG(METRICS())", start, end, 30*time.Second)
			switch {
			case tc.err == "" && (err != nil || !slices.Equal(got, tc.want)):
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("got %v, %v; want an error containing %q", got, err, tc.err)
			case tc.noData != errors.Is(err, provider.ErrNoData):
				t.Fatalf("got %v, want no data %v", err, tc.noData)
			}
		})
	}
}

func TestCloudWatchSeriesAsksForTheWindowAtTheStepInWholeMinutes(t *testing.T) {
	start, end := time.Unix(1700000000, 0), time.Unix(1700000300, 0)
	var bodies []cbor.Map
	srv := pages(t, []answer{withToken(ok(ascending("PartialData", 0, 1)), "page-2"), ok(ascending("Complete", 1, 2))}, &bodies)
	if _, err := build(t, srv.URL).(provider.SeriesProvider).Series(t.Context(), "AVG(METRICS())", start, end, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 {
		t.Fatalf("%d requests, want 2", len(bodies))
	}
	first, second := bodies[0], bodies[1]
	q := first["MetricDataQueries"].(cbor.List)[0].(cbor.Map)
	if q["Expression"] != cbor.String("AVG(METRICS())") || q["Period"] != cbor.Uint(120) || q["ReturnData"] != cbor.Bool(true) {
		t.Errorf("query %v, want the expression with Period 120", q)
	}
	if first["ScanBy"] != cbor.String("TimestampAscending") {
		t.Errorf("ScanBy %v", first["ScanBy"])
	}
	if !sameTime(first["StartTime"], start) || !sameTime(first["EndTime"], end) {
		t.Errorf("StartTime %v, EndTime %v, want the window", first["StartTime"], first["EndTime"])
	}
	if _, ok := first["NextToken"]; ok || second["NextToken"] != cbor.String("page-2") {
		t.Errorf("NextToken %v then %v, want none then page-2", first["NextToken"], second["NextToken"])
	}
}

// sameTime says whether a CBOR epoch-time tag is at.
func sameTime(v cbor.Value, at time.Time) bool {
	tag, ok := v.(*cbor.Tag)
	if !ok {
		return false
	}
	switch n := tag.Value.(type) {
	case cbor.Float64:
		return float64(n) == float64(at.Unix())
	case cbor.Uint:
		return uint64(n) == uint64(at.Unix())
	}
	return false
}
