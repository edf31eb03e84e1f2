//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/e2e/cluster"
)

// TestConfigOnlyChangeReleased: changing only a ConfigMap the app reads
// releases it like a new version: the canary answers with the new
// message at the configured weight, and after promotion everyone gets it.
func TestConfigOnlyChangeReleased(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "config-change")
	var changed time.Time
	byMessage := func(h cluster.Hit) string { return h.Message }
	s.Given("app v1 reading MESSAGE=hello from ConfigMap podinfo-config, behind a canary Rollout (steps 30, 60; 5s each), under load", func() {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: "podinfo-config"}, Data: map[string]string{"MESSAGE": "hello"}}
		s.Must(s.c.Client.Create(s.ctx, cm), "creating the ConfigMap")
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2, ConfigMap: "podinfo-config"})
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(30, 60), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 5 * time.Second}, Threshold: 2,
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		s.StartLoad(50)
		s.Eventually(20*time.Second, "hello answered", func() (bool, string) {
			sp := s.Load.SplitBy(time.Now().Add(-time.Second), time.Now(), byMessage)
			return sp.Total > 20 && sp.Share("hello") == 100, sp.String()
		})
	}).When("only the ConfigMap changes: MESSAGE=bonjour", func() {
		cm := &corev1.ConfigMap{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: "podinfo-config"}, cm), "reading the ConfigMap")
		cm.Data["MESSAGE"] = "bonjour"
		s.Must(s.c.Client.Update(s.ctx, cm), "updating the ConfigMap")
		changed = time.Now()
	}).Then("a release runs and is promoted", func() {
		s.WaitPhase(sluicev1.PhaseSucceeded, 120*time.Second)
		s.ExpectEvents("NewRevision", "Promoted")
	}).And("at each step the share of answers with the new message matched the weight", func() {
		for _, w := range s.WeightWindows(changed) {
			from, to := w.Measured()
			if !to.After(from) {
				continue
			}
			sp, late := s.settledSplit(w, "bonjour", byMessage, splitTolerance)
			s.Figure("config split at weight "+strconv.Itoa(int(w.Weight))+"%", sp.String())
			if late > 0 {
				s.Figure("config weight "+strconv.Itoa(int(w.Weight))+"% applied by the gateway later than the settle time by", late)
			}
			if d := sp.Share("bonjour") - float64(w.Weight); sp.Total < 20 || d > splitTolerance || d < -splitTolerance {
				s.Fatalf("weight %d: %s", w.Weight, sp)
			}
		}
		if len(s.WeightWindows(changed)) == 0 {
			s.Fatalf("no weight was reported while Progressing")
		}
	}).And("everyone now gets the new message, from the primary's copy of the ConfigMap", func() {
		s.Eventually(20*time.Second, "bonjour only", func() (bool, string) {
			sp := s.Load.SplitBy(time.Now().Add(-2*time.Second), time.Now(), byMessage)
			return sp.Total > 40 && sp.Share("bonjour") == 100, sp.String()
		})
		// The new content is in the primary's other copy: the one its
		// previous pods read was never written.
		d := &appsv1.Deployment{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: "podinfo-primary"}, d), "reading the primary")
		name := d.Spec.Template.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name
		for n, want := range map[string]string{name: "bonjour", "podinfo-config-primary": "hello"} {
			cm := &corev1.ConfigMap{}
			s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: n}, cm), "reading ConfigMap "+n)
			if cm.Data["MESSAGE"] != want {
				s.Fatalf("ConfigMap %s MESSAGE=%q, want %q (the primary reads %s)", n, cm.Data["MESSAGE"], want, name)
			}
		}
		if name != "podinfo-config-primary-alt" {
			s.Fatalf("the primary reads ConfigMap %s, want its other copy podinfo-config-primary-alt", name)
		}
	})
}

// TestDeletingOneOfTwoRolloutsSharingAConfigMapLeavesTheOtherServing: two
// apps read one ConfigMap, each released by its own Rollout. Deleting one
// Rollout garbage-collects its objects, its ConfigMap copy with them; the
// other's primary pods read a copy of their own, so one restarted (as a
// node drain or a crash would) starts and serves. With one copy shared by
// both (Flagger's, and Sluice's before), the new pod could not start: its
// ConfigMap was deleted with the other Rollout (fluxcd/flagger#1046).
func TestDeletingOneOfTwoRolloutsSharingAConfigMapLeavesTheOtherServing(t *testing.T) {
	t.Parallel() // see main_test.go
	sharedConfigDeletion(t, "config-shared", false)
}

// TestDeletingTheRolloutWhoseCopyAnotherPrimaryReadsAfterAnUpgradeLeavesItServing:
// an older Sluice named every copy <name>-primary, so both primaries were
// left reading the copy the first Rollout made, and owned, until each is
// promoted again. Deleting that Rollout hands the copy to the other (its
// finalizer makes the other Rollout its controller), so the garbage
// collector keeps it and a restarted pod of the other's primary starts.
func TestDeletingTheRolloutWhoseCopyAnotherPrimaryReadsAfterAnUpgradeLeavesItServing(t *testing.T) {
	t.Parallel() // see main_test.go
	sharedConfigDeletion(t, "config-upgrade", true)
}

// sharedConfigDeletion is the story of both: with olderSluice, podinfo's
// primary is first made to read other's copy, as an older Sluice left it.
func sharedConfigDeletion(t *testing.T, name string, olderSluice bool) {
	s := NewStory(t, name)
	other := cluster.App{Namespace: s.NS, Name: "other", Version: "v1", Replicas: 1, ConfigMap: "shared"}
	otherRo := &sluicev1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: other.Name},
		Spec: sluicev1.RolloutSpec{
			TargetRef:             sluicev1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Name: other.Name},
			Service:               sluicev1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
			Strategy:              sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
			ScaleDownDelaySeconds: ptr.To[int32](3),
		},
	}
	var deleted time.Time
	s.Given("apps other and podinfo read ConfigMap shared; other's Rollout is made first, then podinfo's canary Rollout, under load", func() {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: "shared"}, Data: map[string]string{"MESSAGE": "hello"}}
		s.Must(s.c.Client.Create(s.ctx, cm), "creating the ConfigMap")
		other.Image = s.c.Image("testapp")
		s.Must(s.c.Client.Create(s.ctx, other.Deployment()), "creating Deployment other")
		s.WaitDeploymentReady(other.Name)
		s.Must(s.c.Client.Create(s.ctx, otherRo), "creating Rollout other")
		s.Eventually(90*time.Second, "Rollout other Initialized", func() (bool, string) {
			ro := &sluicev1.Rollout{}
			s.Must(s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(otherRo), ro), "reading Rollout other")
			return ro.Status.Phase == sluicev1.PhaseInitialized, string(ro.Status.Phase) + ": " + ro.Status.Message
		})
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2, ConfigMap: "shared"})
		s.CreateRollout(s.App.GatewayRollout(s.Host, CanarySteps(50), &sluicev1.Analysis{
			Interval: &metav1.Duration{Duration: 5 * time.Second}, Threshold: 2,
		}))
		s.WaitPhase(sluicev1.PhaseInitialized, 90*time.Second)
		if olderSluice {
			s.readOthersCopy("podinfo-primary", "shared-primary")
		}
		s.StartLoad(30)
		s.WaitServing("v1")
	}).When("other's Rollout is deleted and the garbage collector has removed what it owned", func() {
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(otherRo), otherRo), "reading Rollout other")
		uid := otherRo.UID
		s.Must(s.c.Client.Delete(s.ctx, otherRo), "deleting Rollout other")
		s.Eventually(90*time.Second, "no ConfigMap owned by Rollout other", func() (bool, string) {
			list := &corev1.ConfigMapList{}
			s.Must(s.c.Client.List(s.ctx, list, client.InNamespace(s.NS)), "listing ConfigMaps")
			for _, cm := range list.Items {
				for _, o := range cm.OwnerReferences {
					if o.UID == uid {
						return false, "ConfigMap " + cm.Name + " is still there"
					}
				}
			}
			return true, ""
		})
		deleted = time.Now()
	}).Then("a restarted pod of podinfo's primary starts and serves, and no request fails", func() {
		pods := &corev1.PodList{}
		s.Must(s.c.Client.List(s.ctx, pods, client.InNamespace(s.NS), client.MatchingLabels{"app": "podinfo-primary"}), "listing the primary's pods")
		if len(pods.Items) == 0 {
			s.Fatalf("podinfo's primary has no pod")
		}
		victim := pods.Items[0].Name
		s.Must(s.c.Kube.CoreV1().Pods(s.NS).EvictV1(s.ctx, &policyv1.Eviction{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: victim},
		}), "evicting "+victim)
		s.Eventually(90*time.Second, "a new primary pod ready in "+victim+"'s place", func() (bool, string) {
			s.Must(s.c.Client.List(s.ctx, pods, client.InNamespace(s.NS), client.MatchingLabels{"app": "podinfo-primary"}), "listing the primary's pods")
			ready, why := 0, ""
			for _, p := range pods.Items {
				if p.Name == victim || p.DeletionTimestamp != nil {
					continue
				}
				if cluster.PodReady(&p) {
					ready++
					continue
				}
				for _, c := range p.Status.ContainerStatuses {
					if w := c.State.Waiting; w != nil {
						why = fmt.Sprintf("pod %s waiting: %s: %s", p.Name, w.Reason, w.Message)
					}
				}
			}
			return ready == 2, fmt.Sprintf("%d of 2 ready; %s", ready, why)
		})
		s.ExpectNoFailedRequests(deleted)
	})
}

// readOthersCopy makes the primary Deployment read ConfigMap name instead of
// the copy Sluice made it, as an older Sluice left it, and waits for its
// pods to have rolled.
func (s *Story) readOthersCopy(primary, name string) {
	// The Deployment controller writes the primary's status meanwhile.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: primary}, d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].EnvFrom[0].ConfigMapRef.Name = name
		return s.c.Client.Update(s.ctx, d)
	})
	s.Must(err, "making "+primary+" read "+name)
	s.WaitDeploymentReady(primary)
}

// TestAnAbortedConfigReleaseLeavesTheStablePodsTheirConfiguration: v1 reads
// its message from a ConfigMap mounted as a volume, which the kubelet
// refreshes in running pods. v2 comes with a new message, and its pods
// cannot become ready on the primary, so the promotion stalls with the
// primary's v1 pods still running. Those pods keep reading the message they
// were released with however long the promotion waits (the new content went
// into the primary's other copy), and after an abort traffic comes back to
// them answering it. When a promotion wrote the copy they read, the kubelet
// handed them v2's message within its sync period, and the abort sent
// traffic back to v1 answering it.
func TestAnAbortedConfigReleaseLeavesTheStablePodsTheirConfiguration(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "config-abort")
	var changed, aborted time.Time
	byMessage := func(h cluster.Hit) string { return h.Version + " " + h.Message }
	s.Given("app v1 reading its message hello from ConfigMap podinfo-config mounted as a volume, behind a blue/green Rollout (1 iteration of 2s, progress deadline 45s), under load, and v2 unable to become ready on the primary", func() {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: "podinfo-config"}, Data: map[string]string{"MESSAGE": "hello"}}
		s.Must(s.c.Client.Create(s.ctx, cm), "creating the ConfigMap")
		s.DeployApp(cluster.App{Name: "podinfo", Version: "v1", Replicas: 2, MessageConfigMap: "podinfo-config"})
		ro := s.App.GatewayRollout(s.Host, sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
			&sluicev1.Analysis{Interval: &metav1.Duration{Duration: 2 * time.Second}, Threshold: 2})
		ro.Spec.ProgressDeadlineSeconds = ptr.To[int32](45)
		s.CreateRollout(ro)
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		t.Cleanup(s.c.HoldReady(func(p *corev1.Pod) bool {
			return p.Namespace == s.NS && p.Labels["app"] == "podinfo-primary" && cluster.PodVersion(p) == "v2"
		}))
		s.StartLoad(30)
		s.Eventually(30*time.Second, "v1 answering hello", func() (bool, string) {
			sp := s.Load.SplitBy(time.Now().Add(-time.Second), time.Now(), byMessage)
			return sp.Total >= 10 && sp.Share("v1 hello") == 100, sp.String()
		})
	}).When("v2 is released with the message bonjour", func() {
		cm := &corev1.ConfigMap{}
		s.Must(s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: "podinfo-config"}, cm), "reading the ConfigMap")
		cm.Data["MESSAGE"] = "bonjour"
		s.Must(s.c.Client.Update(s.ctx, cm), "updating the ConfigMap")
		changed = s.UpdateApp(cluster.App{Name: "podinfo", Version: "v2", Replicas: 2, MessageConfigMap: "podinfo-config"})
	}).Then("the promotion stalls with all traffic on the canary, v2 answering bonjour", func() {
		st := s.waitStalled("PromotionStalled", 180*time.Second)
		if st.Phase != sluicev1.PhasePromoting {
			s.Fatalf("phase %s, want Promoting", st.Phase)
		}
		s.Eventually(30*time.Second, "v2 answering bonjour", func() (bool, string) {
			sp := s.Load.SplitBy(time.Now().Add(-time.Second), time.Now(), byMessage)
			return sp.Total >= 10 && sp.Share("v2 bonjour") == 100, sp.String()
		})
	}).And("the primary's v1 pods, asked directly over twice the kubelet's sync period, still answer hello", func() {
		hc := &http.Client{Timeout: 2 * time.Second}
		asked := map[string]int{}
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
			pods := &corev1.PodList{}
			s.Must(s.c.Client.List(s.ctx, pods, client.InNamespace(s.NS), client.MatchingLabels{"app": "podinfo-primary"}), "listing the primary's pods")
			for _, p := range pods.Items {
				if cluster.PodVersion(&p) != "v1" || p.DeletionTimestamp != nil || !cluster.PodReady(&p) {
					continue
				}
				resp, err := hc.Get(fmt.Sprintf("http://%s/", net.JoinHostPort(p.Status.PodIP, strconv.Itoa(cluster.AppPort))))
				if err != nil {
					s.Fatalf("asking pod %s: %v", p.Name, err)
				}
				_ = resp.Body.Close()
				if got := resp.Header.Get("X-Message"); got != "hello" {
					// Not fatal: the abort below shows what clients get.
					s.Errorf("the primary's v1 pod %s answers %q (status %d) %s after the change, want the hello it was released with", p.Name, got, resp.StatusCode, time.Since(changed).Round(time.Second))
					return
				}
				asked[p.Name]++
			}
		}
		if len(asked) == 0 {
			s.Fatalf("no ready v1 pod left on the primary to ask")
		}
		s.Logf("asked the primary's v1 pods %v", asked)
	}).And("an abort sends traffic back to v1, answering hello", func() {
		s.askAbort()
		aborted = time.Now()
		s.WaitPhase(sluicev1.PhaseFailed, 60*time.Second)
		s.WaitServing("v1")
		time.Sleep(5 * time.Second)
		sp := s.Load.SplitBy(aborted, time.Now(), byMessage)
		s.Figure("answers since the abort", sp.String())
		for key, n := range sp.ByVersion {
			if strings.HasPrefix(key, "v1 ") && key != "v1 hello" {
				s.Fatalf("%d answers of v1 since the abort said %q: %s", n, strings.TrimPrefix(key, "v1 "), sp)
			}
		}
	}).And("no request failed", func() {
		s.ExpectNoFailedRequests(changed)
	})
}

// TestGeneratedConfigMapNamesLeaveNoCopiesBehind: the app's ConfigMap is
// generated with a new name for each content (kustomize's
// configMapGenerator), and each version points at its own. Each release
// gives the primary a copy of the new one; once a release has ended, the
// copy no pod reads any more is deleted by the manager under the chart's
// RBAC and admission policy, the previous release's copy is kept (an undo
// finds it), and no request fails.
func TestGeneratedConfigMapNamesLeaveNoCopiesBehind(t *testing.T) {
	t.Parallel() // see main_test.go
	s := NewStory(t, "config-generated")
	var changed time.Time
	app := func(v string) cluster.App {
		return cluster.App{Name: "podinfo", Version: v, Replicas: 2, ConfigMap: "podinfo-config-" + v}
	}
	release := func(v string) {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: "podinfo-config-" + v}, Data: map[string]string{"MESSAGE": "hello " + v}}
		s.Must(s.c.Client.Create(s.ctx, cm), "creating ConfigMap "+cm.Name)
		at := s.UpdateApp(app(v))
		if changed.IsZero() {
			changed = at
		}
		s.Eventually(120*time.Second, v+" promoted", func() (bool, string) {
			st := s.Status()
			return st.Phase == sluicev1.PhaseSucceeded && st.StableRevision != "" && primaryVersion(s) == v, string(st.Phase) + ": " + st.Message
		})
	}
	s.Given("app v1 reading ConfigMap podinfo-config-v1, behind a blue/green Rollout (1 iteration of 2s), under load", func() {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.NS, Name: "podinfo-config-v1"}, Data: map[string]string{"MESSAGE": "hello v1"}}
		s.Must(s.c.Client.Create(s.ctx, cm), "creating ConfigMap podinfo-config-v1")
		s.DeployApp(app("v1"))
		ro := s.App.GatewayRollout(s.Host, sluicev1.Strategy{BlueGreen: &sluicev1.BlueGreenStrategy{Iterations: 1}},
			&sluicev1.Analysis{Interval: &metav1.Duration{Duration: 2 * time.Second}, Threshold: 2})
		ro.Spec.ScaleDownDelaySeconds = ptr.To[int32](3)
		s.CreateRollout(ro)
		s.WaitPhase(sluicev1.PhaseInitialized, 60*time.Second)
		s.StartLoad(30)
		s.WaitServing("v1")
	}).When("v2 and then v3 are released, each with a ConfigMap of its own name", func() {
		release("v2")
		release("v3")
	}).Then("v1's copy is deleted, v2's (the previous release's) and v3's are kept", func() {
		want := []string{"podinfo-config-v2-primary", "podinfo-config-v3-primary"}
		s.Eventually(30*time.Second, "copies "+strings.Join(want, ", "), func() (bool, string) {
			list := &corev1.ConfigMapList{}
			s.Must(s.c.Client.List(s.ctx, list, client.InNamespace(s.NS), client.MatchingLabels{"sluice.dev/rollout": "podinfo"}), "listing the copies")
			var got []string
			for _, cm := range list.Items {
				got = append(got, cm.Name)
			}
			return strings.Join(got, ",") == strings.Join(want, ","), fmt.Sprint(got)
		})
		s.ExpectEvents("ConfigCopiesDeleted")
		s.WaitServing("v3")
		sp := s.Load.SplitBy(time.Now().Add(-time.Second), time.Now(), func(h cluster.Hit) string { return h.Message })
		if sp.Share("hello v3") != 100 {
			s.Fatalf("answers %s, want all hello v3", sp)
		}
	}).And("no request failed", func() {
		s.ExpectNoFailedRequests(changed)
	})
}

// primaryVersion is the VERSION of the primary's pod template.
func primaryVersion(s *Story) string {
	d := &appsv1.Deployment{}
	if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: s.NS, Name: "podinfo-primary"}, d); err != nil {
		return ""
	}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "VERSION" {
			return e.Value
		}
	}
	return ""
}
