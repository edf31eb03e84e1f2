package cluster

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// AppPort is the test app's container port (named "http").
const AppPort = 8080

// AppGRPCPort is the test app's gRPC port (named "grpc", cleartext HTTP/2).
const AppGRPCPort = 9090

// App describes a Deployment of the test app.
type App struct {
	Namespace, Name string
	Replicas        int32
	Version         string
	ErrorRate       float64       // share of 500s
	Latency         time.Duration // added per request
	// ConfigMap, when set, is mounted as env (envFrom) into the app.
	ConfigMap string
	// MessageConfigMap, when set, is mounted as a volume: the app answers
	// with its key MESSAGE as the file reads at each request, so a story
	// sees what the kubelet's refresh of a mounted ConfigMap gives a
	// running pod (real node).
	MessageConfigMap string
	// Image, when set, runs the app as a real container of that image
	// (the real node): with a readiness probe, resources, a non-root
	// user. Empty on the kwok cluster, where the harness runs the binary.
	Image string
	// NotReady makes the app's readiness probe fail (real node).
	NotReady bool
	// ReadyFor, when set, makes the app's readiness probe fail once the
	// app has run that long (real node).
	ReadyFor time.Duration
	// CPUPerRequest is CPU burnt per request (real node: drives an HPA).
	CPUPerRequest time.Duration
	// CPURequest is the container's CPU request (real node), 20m when
	// empty. An app that burns CPU should ask for about what it uses: the
	// kernel shares a busy node by requests, so a pod running far above
	// its own is the first to stall.
	CPURequest string
}

// Deployment returns the app's Deployment.
func (a App) Deployment() *appsv1.Deployment {
	labels := map[string]string{"app": a.Name}
	replicas := a.Replicas
	if replicas == 0 {
		replicas = 2
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken:  ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](0),
					Containers:                    []corev1.Container{{Name: "app"}},
				},
			},
		},
	}
	a.Apply(&d.Spec.Template)
	return d
}

// DaemonSet returns the app as a DaemonSet (one pod on each node).
func (a App) DaemonSet() *appsv1.DaemonSet {
	d := a.Deployment()
	return &appsv1.DaemonSet{
		ObjectMeta: d.ObjectMeta,
		Spec:       appsv1.DaemonSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}
}

// Apply writes the app's version, error rate and latency into a pod
// template (what a user changes to release).
func (a App) Apply(t *corev1.PodTemplateSpec) {
	c := &t.Spec.Containers[0]
	c.Image = "sluice.dev/e2e-testapp:" + a.Version
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: AppPort}, {Name: "grpc", ContainerPort: AppGRPCPort}}
	c.Env = []corev1.EnvVar{
		{Name: "VERSION", Value: a.Version},
		{Name: "ERROR_RATE", Value: fmt.Sprint(a.ErrorRate)},
		{Name: "LATENCY", Value: a.Latency.String()},
	}
	if a.Image != "" {
		c.Image = a.Image
		c.ImagePullPolicy = corev1.PullNever
		c.Env = append(c.Env,
			corev1.EnvVar{Name: "NOT_READY", Value: fmt.Sprint(a.NotReady)},
			corev1.EnvVar{Name: "READY_FOR", Value: a.ReadyFor.String()},
			corev1.EnvVar{Name: "CPU_PER_REQUEST", Value: a.CPUPerRequest.String()})
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			// Every second, as a fast-failing app would, but with the
			// kubelet's default failure threshold and a 2s timeout: with
			// one missed probe of 1s enough, a node loaded by the stories
			// beside it made both primary pods not ready for a moment and
			// the gateway answered 503 for the primary's share (seen in CI).
			PeriodSeconds: 1, TimeoutSeconds: 2, FailureThreshold: 3, SuccessThreshold: 1,
		}
		cpu := a.CPURequest
		if cpu == "" {
			cpu = "20m"
		}
		c.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		}
		c.SecurityContext = &corev1.SecurityContext{
			RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532),
			AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		}
		t.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: ReadyGate}}
		// Draining, as production apps do: the pod leaves the endpoints
		// (and the data plane's tables) before it stops serving.
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
		t.Spec.TerminationGracePeriodSeconds = ptr.To[int64](15)
	}
	c.EnvFrom = nil
	if a.ConfigMap != "" {
		c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: a.ConfigMap}}}}
	}
	c.VolumeMounts, t.Spec.Volumes = nil, nil
	if a.MessageConfigMap != "" {
		c.VolumeMounts = []corev1.VolumeMount{{Name: "message", MountPath: "/etc/testapp", ReadOnly: true}}
		t.Spec.Volumes = []corev1.Volume{{Name: "message", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: a.MessageConfigMap}}}}}
		c.Env = append(c.Env, corev1.EnvVar{Name: "MESSAGE_FILE", Value: "/etc/testapp/MESSAGE"})
	}
}

// GatewayRollout returns a Rollout of the app through the cluster's Gateway
// for host, with the given strategy and analysis.
func (a App) GatewayRollout(host string, strategy sluicev1.Strategy, analysis *sluicev1.Analysis) *sluicev1.Rollout {
	return &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: a.Name},
		Spec: sluicev1.RolloutSpec{
			TargetRef: sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: a.Name},
			Service:   sluicev1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
			Routing: &sluicev1.Routing{GatewayAPI: &sluicev1.GatewayAPIRouting{
				ParentRefs: []sluicev1.ParentReference{{Name: GatewayName, Namespace: GatewayNamespace}},
				Hostnames:  []string{host},
			}},
			Strategy:                strategy,
			Analysis:                analysis,
			ProgressDeadlineSeconds: ptr.To[int32](120),
			// Traefik applies a route change in well under a second here
			// and the app drains for 5s itself: 3s instead of the default
			// 10s keeps the suite under its time budget.
			ScaleDownDelaySeconds: ptr.To[int32](3),
		},
	}
}

// GRPCRollout returns a Rollout of the app's gRPC port through the
// cluster's Gateway for host, with a generated GRPCRoute: the Services'
// port 9090 carries appProtocol kubernetes.io/h2c, which Traefik needs to
// proxy gRPC to a backend in cleartext.
func (a App) GRPCRollout(host string, strategy sluicev1.Strategy, analysis *sluicev1.Analysis) *sluicev1.Rollout {
	ro := a.GatewayRollout(host, strategy, analysis)
	ro.Spec.Service = sluicev1.ServiceSpec{Port: AppGRPCPort, TargetPort: ptr.To(intstr.FromString("grpc")), AppProtocol: "kubernetes.io/h2c"}
	ro.Spec.Routing.GatewayAPI.RouteKind = "GRPCRoute"
	return ro
}

// TraefikService is the service label Traefik's Gateway provider puts on
// the metrics of a backend Service: <namespace>-<service>-http-<port>.
func TraefikService(namespace, service string, port int32) string {
	return fmt.Sprintf("%s-%s-http-%d@kubernetesgateway", namespace, service, port)
}
