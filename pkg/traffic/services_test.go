package traffic

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/internal/ownwrites"
)

// portList shows ports as name:port->target/protocol, in order.
func portList(ports []corev1.ServicePort) string {
	var out []string
	for _, p := range ports {
		out = append(out, fmt.Sprintf("%s:%d->%s/%s", p.Name, p.Port, p.TargetPort.String(), p.Protocol))
	}
	return strings.Join(out, " ")
}

func target(svc sluicev1.ServiceSpec) Target {
	return Target{Rollout: &sluicev1.Rollout{Spec: sluicev1.RolloutSpec{Service: svc}}}
}

func TestPortDiscoveryAddsTheTemplatesPortsAfterTheSpecsOwn(t *testing.T) {
	containers := []corev1.ContainerPort{
		{Name: "http", ContainerPort: 8080},                               // the main port's target: skipped
		{Name: "metrics", ContainerPort: 9797},                            // listed in service.ports: skipped
		{Name: "grpc", ContainerPort: 9090},                               // named: keeps its name
		{ContainerPort: 5353, Protocol: corev1.ProtocolUDP},               // unnamed: named after protocol and number
		{ContainerPort: 5353, Protocol: corev1.ProtocolTCP},               // same number, other protocol: its own port
		{Name: "admin", ContainerPort: 9090},                              // a second container declaring 9090: skipped
		{Name: "grpc", ContainerPort: 7070, Protocol: corev1.ProtocolTCP}, // name taken: named after its number
	}
	cases := []struct {
		name string
		svc  sluicev1.ServiceSpec
		want string
	}{
		{"off", sluicev1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080))},
			"http:80->8080/TCP"},
		{"on", sluicev1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080)), PortDiscovery: true,
			Ports: []sluicev1.ServicePort{{Name: "metrics", Port: 9797}}},
			"http:80->8080/TCP metrics:9797->9797/TCP grpc:9090->9090/TCP udp-5353:5353->5353/UDP tcp-5353:5353->5353/TCP tcp-7070:7070->7070/TCP"},
		{"main port targeting a container port by name", sluicev1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("grpc")), PortName: "web", PortDiscovery: true},
			"web:80->grpc/TCP http:8080->8080/TCP metrics:9797->9797/TCP udp-5353:5353->5353/UDP tcp-5353:5353->5353/TCP admin:9090->9090/TCP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := portList(servicePorts(target(tc.svc), containers)); got != tc.want {
				t.Errorf("ports\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestKeptPortsStayBesideTheWantedOnes(t *testing.T) {
	want := []corev1.ServicePort{
		{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP},
		{Name: "grpc", Port: 9090, TargetPort: intstr.FromInt32(9090), Protocol: corev1.ProtocolTCP},
	}
	have := []corev1.ServicePort{
		{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP, NodePort: 0},
		{Name: "debug", Port: 6060, TargetPort: intstr.FromInt32(6060), Protocol: corev1.ProtocolTCP}, // dropped by the new template: kept
		{Name: "rpc", Port: 9090, TargetPort: intstr.FromInt32(9090), Protocol: corev1.ProtocolTCP},   // renamed: the new name wins
	}
	if got, w := portList(KeptPorts(want, have)), "http:80->8080/TCP grpc:9090->9090/TCP debug:6060->6060/TCP"; got != w {
		t.Errorf("kept\n got %s\nwant %s", got, w)
	}
}

func TestContainerPortsListsTheContainersPortsInOrder(t *testing.T) {
	tpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Ports: []corev1.ContainerPort{{ContainerPort: 1}}}},
		Containers: []corev1.Container{
			{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {ContainerPort: 9090}}},
			{Name: "proxy", Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 15000}}},
		},
	}}
	var got []int32
	for _, p := range ContainerPorts(tpl) {
		got = append(got, p.ContainerPort)
	}
	if fmt.Sprint(got) != "[8080 9090 15000]" {
		t.Errorf("container ports = %v", got)
	}
	if ContainerPorts(nil) != nil {
		t.Error("ports of no template")
	}
}

func TestTheCachedServiceKeepsWhatSluiceReadsAndPatches(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop",
			Labels: map[string]string{ManagedByLabel: ManagedByValue}, Annotations: map[string]string{"team": "payments"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Rollout", Name: "web", Controller: ptr.To(true)}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "sluice"}}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "web-primary"},
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 30080, Protocol: corev1.ProtocolTCP}},
			ClusterIP: "10.96.0.12", ClusterIPs: []string{"10.96.0.12"}, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicySingleStack), InternalTrafficPolicy: ptr.To(corev1.ServiceInternalTrafficPolicyCluster),
			SessionAffinity: corev1.ServiceAffinityNone,
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}},
	}
	want := svc.DeepCopy()
	want.ManagedFields, want.Status = nil, corev1.ServiceStatus{}
	want.Spec = corev1.ServiceSpec{Type: svc.Spec.Type, Selector: svc.Spec.Selector, Ports: svc.Spec.Ports}
	out, err := StripService(svc)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(out, want) {
		t.Errorf("cached Service:\n got %+v\nwant %+v", out, want)
	}
	// A merge patch from the cached copy names only what Sluice changes:
	// the dropped fields are never written back.
	before := want.DeepCopy()
	want.Spec.Selector = map[string]string{"app": "web-canary"}
	patch, err := client.MergeFrom(before).Data(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(patch); got != `{"spec":{"selector":{"app":"web-canary"}}}` {
		t.Errorf("patch = %s, want the selector only", got)
	}
	if o, _ := StripService(&corev1.ConfigMap{}); o == nil {
		t.Error("a ConfigMap did not pass through")
	}
}

// emptyCache has none of the objects: a cache behind the API server, with
// no memory of the creates that put them there.
type emptyCache struct{ client.Client }

func (emptyCache) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(corev1.Resource("services"), key.Name)
}

// A create refused as existing asks the API server whose Service it is:
// the Rollout's own is a cache behind (look again), only someone else's
// is a conflict to tell.
func TestACreateRefusedAsExistingAsksWhoseServiceItIs(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := sluicev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ro := &sluicev1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo", UID: "4b0d"}}
	own := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo-primary"}}
	if err := controllerutil.SetControllerReference(ro, own, scheme); err != nil {
		t.Fatal(err)
	}
	someoneElses := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "podinfo-canary"}}
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(own, someoneElses).Build()
	tg := Target{Rollout: ro, Apex: "podinfo", Primary: "podinfo-primary", Canary: "podinfo-canary"}
	ports := []corev1.ServicePort{{Name: "http", Port: 80}}

	err := EnsureService(ctx, emptyCache{api}, api, tg, "podinfo-primary", map[string]string{"app": "podinfo-primary"}, true, ports, false)
	if !errors.Is(err, ownwrites.ErrBehind) {
		t.Errorf("the Rollout's own Service: got %v, want ErrBehind", err)
	}
	err = EnsureService(ctx, emptyCache{api}, api, tg, "podinfo-canary", map[string]string{"app": "podinfo"}, true, ports, false)
	if conflict := (*ServiceConflictError)(nil); !errors.As(err, &conflict) || conflict.Name != "podinfo-canary" {
		t.Errorf("someone else's Service: got %v, want a ServiceConflictError", err)
	}
}
