package kubernetes_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	extmetrics "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"
)

// testCA is a throwaway certificate authority: it signs the adapter's
// serving certificate (the APIService's caBundle trusts it) and the
// aggregator's proxy client certificate (the adapter trusts it).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issue signs a certificate for cn (and the DNS names) with one extended
// usage, returning it and its key in PEM.
func (ca *testCA) issue(cn string, dns []string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	tpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// adapterRequest is what the adapter saw of one metric request.
type adapterRequest struct {
	// User is the identity the aggregator forwarded (X-Remote-User).
	User, Namespace, Metric, Selector string
}

// errNoHostAddress: the API server refuses loopback endpoints.
var errNoHostAddress = errors.New("this host has no non-loopback IPv4 address for the adapter's endpoint (EndpointSlices may not name loopback addresses)")

// hostAddress is an IPv4 address of this host's own that is not loopback
// nor link-local: the address of the adapter's endpoint, which the API
// server validates as it would a Pod's.
func hostAddress() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		return n.IP.String(), nil
	}
	return "", errNoHostAddress
}

// adapter is a small external metrics adapter, as KEDA's or
// prometheus-adapter serve the API: discovery of
// external.metrics.k8s.io/v1beta1 and, per namespace and metric, an
// ExternalMetricValueList of the series its label selector matches. It
// only answers the aggregator: a client certificate of the test CA is
// required (the requestheader authentication of a real adapter).
type adapter struct {
	srv *httptest.Server
	// series are its metrics by namespace, then name; failing names the
	// metrics whose backend is down (500).
	series  map[string]map[string][]extmetrics.ExternalMetricValue
	failing map[string]bool

	mu   sync.Mutex
	seen []adapterRequest
}

const groupVersion = "external.metrics.k8s.io/v1beta1"

// startAdapter serves on ip with a certificate for dnsName.
func startAdapter(ca *testCA, ip, dnsName string) (*adapter, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.issue(dnsName, []string{dnsName}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	clients := x509.NewCertPool()
	clients.AddCert(ca.cert)
	a := &adapter{series: map[string]map[string][]extmetrics.ExternalMetricValue{}, failing: map[string]bool{}}
	a.srv = httptest.NewUnstartedServer(a)
	_ = a.srv.Listener.Close()
	a.srv.Listener = l
	a.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: clients,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	a.srv.StartTLS()
	return a, nil
}

// set gives a metric its series in a namespace: label sets with values.
func (a *adapter) set(ns, metric string, series map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.series[ns] == nil {
		a.series[ns] = map[string][]extmetrics.ExternalMetricValue{}
	}
	var items []extmetrics.ExternalMetricValue
	for sel, v := range series {
		set, err := labels.ConvertSelectorToLabelsMap(sel)
		if err != nil {
			panic(err)
		}
		items = append(items, extmetrics.ExternalMetricValue{MetricName: metric, MetricLabels: set,
			Timestamp: metav1.Now(), Value: resource.MustParse(v)})
	}
	a.series[ns][metric] = items
}

// fail makes a metric's backend fail: the adapter answers it with 500.
func (a *adapter) fail(metric string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failing[metric] = true
}

// requests returns the metric requests seen so far.
func (a *adapter) requests() []adapterRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]adapterRequest(nil), a.seen...)
}

func (a *adapter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/apis/"+groupVersion)
	switch {
	case r.Method != http.MethodGet:
		writeStatus(w, apierrors.NewMethodNotSupported(schema.GroupResource{Group: "external.metrics.k8s.io"}, r.Method))
	case path == "" || path == "/":
		a.discovery(w)
	case strings.HasPrefix(path, "/namespaces/"):
		parts := strings.Split(strings.TrimPrefix(path, "/namespaces/"), "/")
		if len(parts) != 2 {
			writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Group: "external.metrics.k8s.io"}, path))
			return
		}
		a.list(w, r, parts[0], parts[1])
	default:
		// Among others, the aggregated discovery of /apis: the API server
		// falls back to the group version's discovery above.
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
	}
}

// discovery is the APIResourceList of the group version.
func (a *adapter) discovery(w http.ResponseWriter) {
	a.mu.Lock()
	list := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: groupVersion}
	names := map[string]bool{}
	for _, metrics := range a.series {
		for name := range metrics {
			names[name] = true
		}
	}
	a.mu.Unlock()
	for name := range names {
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: name, Namespaced: true,
			Kind: "ExternalMetricValueList", Verbs: metav1.Verbs{"get"}})
	}
	writeJSON(w, http.StatusOK, list)
}

// list answers one metric in one namespace as the custom-metrics-apiserver
// library does: an unknown metric is NotFound, a failing backend an
// internal error, else the series the label selector matches (maybe none).
func (a *adapter) list(w http.ResponseWriter, r *http.Request, ns, metric string) {
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	a.mu.Lock()
	a.seen = append(a.seen, adapterRequest{User: r.Header.Get("X-Remote-User"), Namespace: ns, Metric: metric, Selector: sel.String()})
	series, known := a.series[ns][metric]
	failing := a.failing[metric]
	a.mu.Unlock()
	gr := schema.GroupResource{Group: "external.metrics.k8s.io", Resource: metric}
	switch {
	case failing:
		writeStatus(w, apierrors.NewInternalError(errBackendDown))
		return
	case !known:
		writeStatus(w, apierrors.NewNotFound(gr, metric))
		return
	}
	list := extmetrics.ExternalMetricValueList{TypeMeta: metav1.TypeMeta{Kind: "ExternalMetricValueList", APIVersion: groupVersion},
		Items: []extmetrics.ExternalMetricValue{}}
	for _, s := range series {
		if sel.Matches(labels.Set(s.MetricLabels)) {
			list.Items = append(list.Items, s)
		}
	}
	writeJSON(w, http.StatusOK, list)
}

// errBackendDown is the cause of a failing metric's 500.
var errBackendDown = errors.New("the queue backend is unreachable")

func writeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.Status()
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(st.Code), st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
