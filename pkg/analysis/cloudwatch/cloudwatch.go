// Package cloudwatch is the Amazon CloudWatch metrics provider: the rendered
// query is a metric math expression or a Metrics Insights query (e.g.
// SELECT SUM(HTTPCode_Target_5XX_Count) FROM "AWS/ApplicationELB" WHERE
// LoadBalancer = 'app/shop/123') run with GetMetricData over the check's
// window (one period covering it, at least 60s) in provider.region, through
// the AWS SDK for Go v2 and its SigV4 signing; the value is the newest
// point of the one result. It also gives a query's points over a window
// (provider.SeriesProvider), for compare checks.
//
// The credentials Secret holds `aws-access-key-id`, `aws-secret-access-key`
// and optionally `aws-session-token`. They are required: the manager's own
// AWS identity is never lent to a template. provider.address overrides the
// regional endpoint (e.g. a VPC endpoint).
package cloudwatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"github.com/sluice-dev/sluice/pkg/analysis/provider"
)

// CloudWatch queries GetMetricData.
type CloudWatch struct {
	cfg    provider.Config
	client *cloudwatch.Client
	now    func() time.Time
}

// New builds the CloudWatch provider of a template.
func New(cfg provider.Config) (provider.Provider, error) {
	if cfg.Spec.Region == "" {
		return nil, errors.New("provider type cloudwatch needs provider.region")
	}
	id, err := cfg.Secret("aws-access-key-id")
	if err != nil {
		return nil, err
	}
	secret, err := cfg.Secret("aws-secret-access-key")
	if err != nil {
		return nil, err
	}
	session := strings.TrimSpace(string(cfg.Credentials["aws-session-token"]))
	opts := cloudwatch.Options{
		Region:      cfg.Spec.Region,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, session),
		HTTPClient:  cfg.HTTP,
		// One attempt: the check runs again at the next interval, and a
		// throttled answer is reported, not hidden behind retries.
		Retryer: aws.NopRetryer{},
	}
	if cfg.Spec.Address != "" {
		opts.BaseEndpoint = aws.String(cfg.Spec.Address)
	}
	return &CloudWatch{cfg: cfg, client: cloudwatch.New(opts), now: time.Now}, nil
}

// period is one period covering the window, in whole minutes.
func period(window time.Duration) int32 {
	minutes := int32((window + time.Minute - 1) / time.Minute)
	return max(1, minutes) * 60
}

// Query implements provider.Provider.
func (c *CloudWatch) Query(ctx context.Context, query string) (float64, error) {
	end := c.now().Truncate(time.Minute)
	p := period(c.cfg.Window)
	out, err := c.client.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(end.Add(-time.Duration(p) * time.Second)),
		EndTime:   aws.Time(end),
		ScanBy:    types.ScanByTimestampDescending,
		MetricDataQueries: []types.MetricDataQuery{{
			Id: aws.String("sluice"), Expression: aws.String(query), Period: aws.Int32(p), ReturnData: aws.Bool(true),
		}},
	})
	if err != nil {
		return 0, c.explain(ctx, err)
	}
	for _, m := range out.Messages {
		return 0, fmt.Errorf("cloudwatch: %s: %s", aws.ToString(m.Code), aws.ToString(m.Value))
	}
	switch len(out.MetricDataResults) {
	case 0:
		return 0, fmt.Errorf("cloudwatch returned no result: %w", provider.ErrNoData)
	case 1:
	default:
		return 0, fmt.Errorf("cloudwatch returned %d results, want one (drop GROUP BY or aggregate the expression)", len(out.MetricDataResults))
	}
	r := out.MetricDataResults[0]
	for _, m := range r.Messages {
		return 0, fmt.Errorf("cloudwatch: %s: %s", aws.ToString(m.Code), aws.ToString(m.Value))
	}
	if r.StatusCode != types.StatusCodeComplete && r.StatusCode != "" {
		return 0, fmt.Errorf("cloudwatch result status %s, want Complete", r.StatusCode)
	}
	if len(r.Values) == 0 {
		return 0, fmt.Errorf("cloudwatch returned no datapoints in the last %ds: %w", p, provider.ErrNoData)
	}
	return r.Values[0], nil // newest first (ScanBy TimestampDescending)
}

// explain words an SDK error: a rate limit, refused credentials and a
// timeout say so plainly.
func (c *CloudWatch) explain(ctx context.Context, err error) error {
	var re *awshttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code := ""
	var api smithy.APIError
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	switch {
	case status == http.StatusTooManyRequests || strings.Contains(code, "Throttl") || code == "LimitExceededException":
		msg := "cloudwatch rate limit reached (" + strings.TrimSpace(code+" "+statusText(status)) + ")"
		if re != nil && re.Response != nil {
			if ra := re.Response.Header.Get("Retry-After"); ra != "" {
				msg += "; it asks to retry after " + ra
			}
		}
		return errors.New(msg)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("cloudwatch refused the credentials (%s): check the template's secretRef: %w", strings.TrimSpace(code+" "+statusText(status)), err)
	case ctx.Err() != nil:
		return fmt.Errorf("cloudwatch query timed out after %s: %w", c.cfg.Timeout, err)
	}
	return fmt.Errorf("cloudwatch: %w", err)
}

func statusText(status int) string {
	if status == 0 {
		return ""
	}
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

var _ provider.SeriesProvider = (*CloudWatch)(nil)

// maxPages bounds the GetMetricData pages one series may take: a compare
// window holds far fewer points than one page (100,800).
const maxPages = 10

// Series implements provider.SeriesProvider for compare checks: the
// query's one result from start to end, one point per period (the step in
// whole minutes, rounded up, at least 60s: standard resolution),
// TimestampAscending so that the values come oldest first, following
// NextToken while the result is PartialData.
func (c *CloudWatch) Series(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]float64, error) {
	if !end.After(start) {
		return nil, fmt.Errorf("the series window ends (%s) before it starts (%s)", end, start)
	}
	in := &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(start),
		EndTime:   aws.Time(end),
		ScanBy:    types.ScanByTimestampAscending,
		MetricDataQueries: []types.MetricDataQuery{{
			Id: aws.String("sluice"), Expression: aws.String(query), Period: aws.Int32(period(step)), ReturnData: aws.Bool(true),
		}},
	}
	var out []float64
	for page := 1; ; page++ {
		r, err := c.page(ctx, in)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r.Values...)
		}
		switch {
		case r != nil && r.StatusCode == types.StatusCodePartialData && in.NextToken == nil:
			return nil, errors.New("cloudwatch result status PartialData without a NextToken to read the rest")
		case in.NextToken == nil:
			if len(out) == 0 {
				return nil, fmt.Errorf("cloudwatch returned no datapoints between %s and %s: %w",
					start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), provider.ErrNoData)
			}
			return out, nil
		case page == maxPages:
			return nil, fmt.Errorf("cloudwatch still had a NextToken after %d pages; narrow the query", maxPages)
		}
	}
}

// page asks for one page of in, sets in.NextToken to the answer's, and
// returns its one result (nil on a page without any).
func (c *CloudWatch) page(ctx context.Context, in *cloudwatch.GetMetricDataInput) (*types.MetricDataResult, error) {
	out, err := c.client.GetMetricData(ctx, in)
	if err != nil {
		return nil, c.explain(ctx, err)
	}
	in.NextToken = out.NextToken
	for _, m := range out.Messages {
		return nil, fmt.Errorf("cloudwatch: %s: %s", aws.ToString(m.Code), aws.ToString(m.Value))
	}
	switch len(out.MetricDataResults) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("cloudwatch returned %d results, want one (drop GROUP BY or aggregate the expression)", len(out.MetricDataResults))
	}
	r := &out.MetricDataResults[0]
	for _, m := range r.Messages {
		return nil, fmt.Errorf("cloudwatch: %s: %s", aws.ToString(m.Code), aws.ToString(m.Value))
	}
	switch r.StatusCode {
	case types.StatusCodeComplete, types.StatusCodePartialData, "":
	default:
		return nil, fmt.Errorf("cloudwatch result status %s, want Complete", r.StatusCode)
	}
	if len(r.Timestamps) != len(r.Values) {
		return nil, fmt.Errorf("cloudwatch result has %d timestamps for %d values", len(r.Timestamps), len(r.Values))
	}
	return r, nil
}
