package kubernetes_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// The adapter's Service, in its own namespace, as an adapter's chart
// installs it; the aggregator checks the adapter's certificate against
// this Service's DNS name.
const (
	adapterNamespace = "external-metrics"
	adapterService   = "test-adapter"
	apiServiceName   = "v1beta1.external.metrics.k8s.io"
	// proxyClientName is the common name of the aggregator's client
	// certificate, the one requestheader name the API server allows.
	proxyClientName = "front-proxy-client"
)

// cluster is a real kube-apiserver with the test adapter registered as the
// external metrics APIService, shared by this package's tests and started
// by the first that needs it (the unit tests of the package need none).
type cluster struct {
	env     *testenv.Env
	admin   client.Client
	adapter *adapter
	dir     string
	// manager is the identity the manager reads external metrics with:
	// a user bound to the manager's ClusterRole as config/rbac ships it.
	manager *rest.Config
}

// managerUser is the user name of the manager's identity.
const managerUser = "sluice-manager"

var shared struct {
	once sync.Once
	c    *cluster
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if c := shared.c; c != nil {
		c.stop()
	}
	os.Exit(code)
}

// realCluster returns the shared cluster, starting it on first use.
func realCluster(t *testing.T) *cluster {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		start := time.Now()
		shared.c, shared.err = startCluster(ctx)
		t.Logf("API server with the external metrics APIService Available in %s", time.Since(start).Round(time.Millisecond))
	})
	if shared.err != nil {
		t.Fatalf("starting the API server with the external metrics adapter: %v", shared.err)
	}
	return shared.c
}

func (c *cluster) stop() {
	if c.env != nil {
		_ = c.env.Stop()
	}
	if c.adapter != nil {
		c.adapter.srv.Close()
	}
	_ = os.RemoveAll(c.dir)
}

// startCluster starts the adapter, then kube-apiserver and etcd with the
// aggregator's proxy client certificate, routing to endpoints
// (--enable-aggregator-routing: the API server dials the address of the
// adapter's EndpointSlice, not the Service's cluster IP, as no kube-proxy
// runs), registers the adapter and waits until its APIService is
// Available. The adapter listens on an address of this host's other than
// loopback: the API server refuses loopback endpoints.
func startCluster(ctx context.Context) (*cluster, error) {
	c, started := &cluster{}, false
	defer func() {
		if !started {
			c.stop()
		}
	}()
	var err error
	if c.dir, err = os.MkdirTemp("", "sluice-external-metrics-"); err != nil {
		return nil, err
	}
	ca, err := newCA()
	if err != nil {
		return nil, err
	}
	ip, err := hostAddress()
	if err != nil {
		return nil, err
	}
	if c.adapter, err = startAdapter(ca, ip, adapterService+"."+adapterNamespace+".svc"); err != nil {
		return nil, err
	}
	proxyCert, proxyKey, err := ca.issue(proxyClientName, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{"ca.crt": ca.pem, "proxy.crt": proxyCert, "proxy.key": proxyKey}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	c.env, err = testenv.StartWith(map[string]string{
		"enable-aggregator-routing":          "true",
		"proxy-client-cert-file":             filepath.Join(c.dir, "proxy.crt"),
		"proxy-client-key-file":              filepath.Join(c.dir, "proxy.key"),
		"requestheader-client-ca-file":       filepath.Join(c.dir, "ca.crt"),
		"requestheader-allowed-names":        proxyClientName,
		"requestheader-username-headers":     "X-Remote-User",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
	})
	if err != nil {
		return nil, err
	}
	if c.admin, err = client.New(c.env.Config, client.Options{Scheme: scheme()}); err != nil {
		return nil, err
	}
	if err := c.register(ctx, ca.pem); err != nil {
		return nil, err
	}
	if err := c.waitAvailable(ctx); err != nil {
		return nil, err
	}
	if c.manager, err = c.bindManager(ctx); err != nil {
		return nil, err
	}
	started = true
	return c, nil
}

// bindManager binds the manager's ClusterRole to managerUser and returns
// that user's configuration once RBAC lets it read external metrics.
func (c *cluster) bindManager(ctx context.Context) (*rest.Config, error) {
	role, err := managerRole()
	if err != nil {
		return nil, err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: managerUser},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: managerUser}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := c.admin.Create(ctx, o); err != nil {
			return nil, fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	if err := c.waitAllowed(ctx, managerUser, "default"); err != nil {
		return nil, err
	}
	return c.userConfig(managerUser)
}

// waitAllowed waits until RBAC lets user read external metrics in ns (the
// authorizer reads roles from an informer, a moment after their write).
// Reading one is a list in RBAC's terms: the request's path names the
// metric as a resource, and no object name.
func (c *cluster) waitAllowed(ctx context.Context, user, ns string) error {
	for {
		review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list",
				Group: "external.metrics.k8s.io", Resource: "queue_messages_ready"},
		}}
		if err := c.admin.Create(ctx, review); err != nil {
			return err
		}
		if review.Status.Allowed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("RBAC does not let %s list external metrics in namespace %s", user, ns)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = sluicev1.AddToScheme(s)
	return s
}

// register installs the adapter as an adapter's chart does: its Service
// and endpoints, and the APIService naming that Service with the CA that
// signed its certificate. No endpoints controller runs in envtest, so the
// EndpointSlice (what the aggregator resolves a Service with since
// Kubernetes 1.33) is written by hand.
func (c *cluster) register(ctx context.Context, caPEM []byte) error {
	ip, portText, err := net.SplitHostPort(c.adapter.srv.Listener.Addr().String())
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return err
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: adapterNamespace}},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: adapterService, Namespace: adapterNamespace},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443,
				TargetPort: intstr.FromInt(port)}}},
		},
		&discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: adapterService, Namespace: adapterNamespace,
				Labels: map[string]string{discoveryv1.LabelServiceName: adapterService}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port)),
				Protocol: ptr.To(corev1.ProtocolTCP)}},
		},
		apiService(caPEM),
	}
	for _, o := range objs {
		if err := c.admin.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// apiService registers external.metrics.k8s.io/v1beta1 to the adapter's
// Service, trusting caPEM for its certificate (no insecureSkipTLSVerify).
func apiService(caPEM []byte) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": apiServiceName},
		"spec": map[string]any{
			"group": "external.metrics.k8s.io", "version": "v1beta1",
			"groupPriorityMinimum": int64(100), "versionPriority": int64(100),
			"service":  map[string]any{"name": adapterService, "namespace": adapterNamespace, "port": int64(443)},
			"caBundle": base64.StdEncoding.EncodeToString(caPEM),
		},
	}}
}

// waitAvailable waits until the aggregator reports the APIService
// Available: it resolved the Service, dialled the endpoint and had the
// adapter's discovery document, with the adapter's certificate verified.
func (c *cluster) waitAvailable(ctx context.Context) error {
	last := "no Available condition yet"
	for {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("apiregistration.k8s.io/v1")
		u.SetKind("APIService")
		if err := c.admin.Get(ctx, client.ObjectKey{Name: apiServiceName}, u); err != nil {
			last = err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] != "Available" {
				continue
			}
			if m["status"] == "True" {
				return nil
			}
			last = fmt.Sprintf("Available=%v: %v: %v", m["status"], m["reason"], m["message"])
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("APIService %s not Available: %s", apiServiceName, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// userConfig returns the rest.Config of a user of the API server in no group:
// it may do only what RBAC grants it.
func (c *cluster) userConfig(name string) (*rest.Config, error) {
	kc, err := c.env.UserKubeConfig(name)
	if err != nil {
		return nil, err
	}
	return clientcmd.RESTConfigFromKubeConfig(kc)
}

// managerRole is the manager's ClusterRole as config/rbac ships it.
func managerRole() (*rbacv1.ClusterRole, error) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		return nil, err
	}
	if role.Name == "" {
		return nil, errors.New("config/rbac/role.yaml holds no ClusterRole")
	}
	return role, nil
}

// create creates objects as the admin, failing the test on an error.
func (c *cluster) create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.admin.Create(t.Context(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}
