package rollout_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/controllers/rollout"
	"github.com/sluice-dev/sluice/internal/manager"
	"github.com/sluice-dev/sluice/pkg/workload"
)

// Stories of the primary's copies of the ConfigMaps and Secrets its target
// uses: a copy is the Rollout's own, and Sluice never writes, or makes
// itself the owner of, an object that is not. (Flagger names its copies
// <name>-primary whoever holds that name: it overwrites a user's object of
// that name and, when two Canaries share a ConfigMap, one's promotion
// changes the other's primary and its deletion deletes the copy the other's
// pods read: fluxcd/flagger#1046, #1930.)

// primaryConfigRef is the name of the ConfigMap (or Secret) the primary
// of the Deployment name reads its first env variable from.
func (s *story) primaryConfigRef(name string) string {
	s.t.Helper()
	src := s.getDeployment(name + "-primary").Spec.Template.Spec.Containers[0].Env[0].ValueFrom
	if src.ConfigMapKeyRef != nil {
		return src.ConfigMapKeyRef.Name
	}
	return src.SecretKeyRef.Name
}

// configData reads the ConfigMap or Secret name as a map of strings.
func (s *story) configData(secret bool, name string) (map[string]string, metav1.ObjectMeta) {
	s.t.Helper()
	key := client.ObjectKey{Namespace: s.ns, Name: name}
	if secret {
		o := &corev1.Secret{}
		s.must(k8sClient.Get(s.ctx, key, o))
		out := map[string]string{}
		for k, v := range o.Data {
			out[k] = string(v)
		}
		return out, o.ObjectMeta
	}
	o := &corev1.ConfigMap{}
	s.must(k8sClient.Get(s.ctx, key, o))
	return o.Data, o.ObjectMeta
}

func (s *story) createConfig(secret bool, name string, data map[string]string) {
	s.t.Helper()
	meta := metav1.ObjectMeta{Name: name, Namespace: s.ns}
	if secret {
		o := &corev1.Secret{ObjectMeta: meta, StringData: data}
		s.must(k8sClient.Create(s.ctx, o))
		return
	}
	s.must(k8sClient.Create(s.ctx, &corev1.ConfigMap{ObjectMeta: meta, Data: data}))
}

func (s *story) setConfig(secret bool, name string, data map[string]string) {
	s.t.Helper()
	key := client.ObjectKey{Namespace: s.ns, Name: name}
	if secret {
		o := &corev1.Secret{}
		s.must(k8sClient.Get(s.ctx, key, o))
		o.Data, o.StringData = nil, data
		s.must(k8sClient.Update(s.ctx, o))
		return
	}
	o := &corev1.ConfigMap{}
	s.must(k8sClient.Get(s.ctx, key, o))
	o.Data = data
	s.must(k8sClient.Update(s.ctx, o))
}

func withConfigEnv(secret bool, name, key string) deployOpt {
	if !secret {
		return withConfigMapEnv(name, key)
	}
	return func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key},
		}})
	}
}

var configKinds = map[string]bool{"ConfigMap": false, "Secret": true}

// twoSharing creates ConfigMap (or Secret) shared, color=blue, and the
// Deployments a and b reading it, each with its initialized Rollout (b's
// with opts).
func (s *story) twoSharing(secret bool, opts ...rolloutOpt) {
	s.t.Helper()
	s.createConfig(secret, "shared", map[string]string{"color": "blue"})
	s.deploy("a", "a:1.0", withConfigEnv(secret, "shared", "color"))
	s.deploy("b", "b:1.0", withConfigEnv(secret, "shared", "color"))
	s.initialized("a")
	s.initialized("b", opts...)
}

// readCopyOf makes the primary of the Deployment name read the copy
// instead of its own, as a Sluice from before per-Rollout copies left it.
func (s *story) readCopyOf(name string, secret bool, copyName string) {
	s.t.Helper()
	s.editDeployment(name+"-primary", func(p *appsv1.Deployment) {
		if src := p.Spec.Template.Spec.Containers[0].Env[0].ValueFrom; secret {
			src.SecretKeyRef.Name = copyName
		} else {
			src.ConfigMapKeyRef.Name = copyName
		}
	})
}

// releaseConfig sets the ConfigMap source to color and waits for Rollout
// name to have promoted a new revision.
func (s *story) releaseConfig(name, source, color string) {
	s.t.Helper()
	before := s.getRollout(name).Status.StableRevision
	s.setConfig(false, source, map[string]string{"color": color})
	s.eventually(storyTimeout, name+" releases "+color, func() error {
		ro := s.getRollout(name)
		if ro.Status.Phase != sluicev1.PhaseSucceeded || ro.Status.StableRevision == before {
			return fmt.Errorf("phase %s, stable %s (was %s): %s", ro.Status.Phase, ro.Status.StableRevision, before, ro.Status.Message)
		}
		return nil
	})
}

// A team keeps its own "db-primary" beside "db" (a primary database's
// credentials, say). The primary's copy of "db" must not overwrite it, nor
// take it over: owned by the Rollout, it would be deleted with it.
func TestAConfigNamedLikeThePrimarysCopyThatIsNotSluicesIsNeverWrittenOrOwned(t *testing.T) {
	for kind, secret := range configKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.createConfig(secret, "db", map[string]string{"color": "blue"})
			s.createConfig(secret, "db-primary", map[string]string{"host": "pg-0.example"})
			s.deploy("podinfo", "podinfo:1.0", withConfigEnv(secret, "db", "color"))
			ro := s.initialized("podinfo")

			theirs, meta := s.configData(secret, "db-primary")
			if want := map[string]string{"host": "pg-0.example"}; fmt.Sprint(theirs) != fmt.Sprint(want) {
				t.Errorf("the team's %s db-primary holds %v, want %v as they wrote it", kind, theirs, want)
			}
			if len(meta.OwnerReferences) > 0 {
				t.Errorf("the team's %s db-primary has owners %v: deleting the Rollout would delete it", kind, meta.OwnerReferences)
			}
			copyName := s.primaryConfigRef("podinfo")
			if copyName == "db" || copyName == "db-primary" {
				t.Fatalf("the primary reads %s %s, want a copy of db of the Rollout's own", kind, copyName)
			}
			data, meta := s.configData(secret, copyName)
			if data["color"] != "blue" {
				t.Errorf("the primary's copy %s holds %v, want db's color=blue", copyName, data)
			}
			if !metav1.IsControlledBy(&metav1.ObjectMeta{OwnerReferences: meta.OwnerReferences}, ro) {
				t.Errorf("the primary's copy %s has owners %v, want the Rollout as controller", copyName, meta.OwnerReferences)
			}
		})
	}
}

// Two Deployments read one ConfigMap, each released by its own Rollout.
// When the ConfigMap changes, each release decides for its own primary
// alone: b's canary never becomes ready and is rolled back, and b's primary
// keeps the content it was released with while a's is promoted.
func TestTwoRolloutsSharingAConfigMapEachReleaseItToTheirOwnPrimaryOnly(t *testing.T) {
	s := newStory(t)
	s.twoSharing(false, progressDeadline(2))
	copyA, copyB := s.primaryConfigRef("a"), s.primaryConfigRef("b")
	if copyA == copyB {
		t.Errorf("both primaries read ConfigMap %s: one Rollout's promotion would change the other's primary", copyA)
	}
	for name, c := range map[string]string{"a": copyA, "b": copyB} {
		_, meta := s.configData(false, c)
		ro := s.getRollout(name)
		if !metav1.IsControlledBy(&metav1.ObjectMeta{OwnerReferences: meta.OwnerReferences}, ro) {
			t.Errorf("%s's copy %s has owners %v, want Rollout %s as controller", name, c, meta.OwnerReferences, name)
		}
	}

	// b's canary never becomes ready with the new content.
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "b" })
	s.setConfig(false, "shared", map[string]string{"color": "green"})
	s.waitPhase("a", sluicev1.PhaseSucceeded, storyTimeout)
	s.waitPhase("b", sluicev1.PhaseFailed, storyTimeout)

	if got, _ := s.configData(false, s.primaryConfigRef("a")); got["color"] != "green" {
		t.Errorf("a's primary reads %v after its release, want color=green", got)
	}
	if got, _ := s.configData(false, s.primaryConfigRef("b")); got["color"] != "blue" {
		t.Errorf("b's primary reads %v after b's release was rolled back, want the blue it was released with", got)
	}
}

// Both names a copy may take are someone else's: the Rollout stalls
// (ConfigConflict, in a Warning event) before anything is written, the
// target keeps serving, and once one name is free it carries on by itself.
func TestAConfigCopyWithNoFreeNameStallsTheRolloutBeforeAnythingIsWritten(t *testing.T) {
	s := newStory(t)
	s.createConfig(false, "db", map[string]string{"color": "blue"})
	s.createConfig(false, "db-primary", map[string]string{"host": "pg-0.example"})
	s.createConfig(false, "db-podinfo-primary", map[string]string{"host": "pg-1.example"})
	s.deploy("podinfo", "podinfo:1.0", withConfigMapEnv("db", "color"))
	s.rollout("podinfo")

	ro := s.waitStalled("podinfo", "ConfigConflict")
	if want := "ConfigMap db-primary and db-podinfo-primary (or their -alt copies) exist and are not this Rollout's copies"; !strings.Contains(ro.Status.Message, want) {
		t.Errorf("the Stalled message %q does not say %q", ro.Status.Message, want)
	}
	s.waitEvent("podinfo", "ConfigConflict")
	if err := k8sClient.Get(s.ctx, client.ObjectKey{Namespace: s.ns, Name: "podinfo-primary"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("primary Deployment while stalled: %v, want not found", err)
	}
	if n := replicas(s.getDeployment("podinfo")); n != 2 {
		t.Errorf("the target runs %d replicas while stalled, want its 2 serving", n)
	}
	for name, host := range map[string]string{"db-primary": "pg-0.example", "db-podinfo-primary": "pg-1.example"} {
		data, meta := s.configData(false, name)
		if data["host"] != host || len(meta.OwnerReferences) > 0 {
			t.Errorf("the team's ConfigMap %s was written: %v, owners %v", name, data, meta.OwnerReferences)
		}
	}

	time.Sleep(3 * time.Second)
	s.must(k8sClient.Delete(s.ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "db-podinfo-primary", Namespace: s.ns}}))
	s.waitPhase("podinfo", sluicev1.PhaseInitialized, rollout.ConflictRecheck+storyTimeout)
	if got := s.primaryConfigRef("podinfo"); got != "db-podinfo-primary" {
		t.Errorf("the primary reads ConfigMap %s, want its copy db-podinfo-primary", got)
	}
}

// An older Sluice named every copy <name>-primary, so two Rollouts whose
// targets read one ConfigMap left both primaries reading the copy the first
// one created, and owned. After an upgrade, b's primary keeps reading a's
// copy until b's next promotion. Deleting a must not take it away: garbage
// collected with a, b's primary pods that start later (an eviction, an
// autoscaler's scale-up) would fail with CreateContainerConfigError.
// envtest runs no garbage collector, so the story looks at what it would
// act on: the copy's owners once a is gone.
func TestDeletingARolloutHandsItsCopyToAnotherPrimaryStillReadingIt(t *testing.T) {
	for kind, secret := range configKinds {
		t.Run(kind, func(t *testing.T) {
			s := newStory(t)
			s.twoSharing(secret)
			copyA := s.primaryConfigRef("a")
			// What an older Sluice left: b's primary reads a's copy.
			s.readCopyOf("b", secret, copyA)

			s.must(k8sClient.Delete(s.ctx, s.getRollout("a")))
			s.eventually(storyTimeout, "Rollout a gone", func() error { return s.gone("a") })

			_, meta := s.configData(secret, copyA)
			b := s.getRollout("b")
			if !metav1.IsControlledBy(&metav1.ObjectMeta{OwnerReferences: meta.OwnerReferences}, b) {
				t.Errorf("%s %s, which b's primary reads, has owners %v once a is deleted, want Rollout b as controller: it would be garbage-collected with a", kind, copyA, meta.OwnerReferences)
			}
			for _, o := range meta.OwnerReferences {
				if o.Name == "a" {
					t.Errorf("%s %s still names the deleted Rollout a as an owner: %v", kind, copyA, o)
				}
			}
			if got := meta.Labels[rollout.RolloutLabel]; got != "b" {
				t.Errorf("%s %s is labelled for Rollout %q, want b", kind, copyA, got)
			}
			s.waitEventSaying("b", "ConfigCopyHandedOver", copyA)
			if got := s.primaryConfigRef("b"); got != copyA {
				t.Errorf("b's primary reads %s, want %s as before: handing a copy over must not roll the primary", got, copyA)
			}
		})
	}
}

// A sharded manager hands a copy over to a Rollout of another shard whose
// primary reads it. Before, it looked for such Rollouts in its cache, which
// holds its shard's only, and the copy went with the deleted Rollout: the
// other primary's next pods could not start.
func TestDeletingARolloutHandsItsCopyToAPrimaryOfAnotherShard(t *testing.T) {
	s := newStoryWith(t, manager.Options{Shard: "!" + manager.ShardLabel})
	s.twoSharing(false)
	copyA := s.primaryConfigRef("a")
	s.readCopyOf("b", false, copyA)
	// b moves to another shard, whose manager does not run here: this
	// one's cache drops it (long before a's handover, after its drain).
	b := s.getRollout("b")
	patch := client.MergeFrom(b.DeepCopy())
	metav1.SetMetaDataLabel(&b.ObjectMeta, manager.ShardLabel, "other")
	s.must(k8sClient.Patch(s.ctx, b, patch))

	s.must(k8sClient.Delete(s.ctx, s.getRollout("a")))
	s.eventually(storyTimeout, "Rollout a gone", func() error { return s.gone("a") })
	_, meta := s.configData(false, copyA)
	if !metav1.IsControlledBy(&metav1.ObjectMeta{OwnerReferences: meta.OwnerReferences}, b) {
		t.Errorf("ConfigMap %s, which b's primary reads, has owners %v once a is deleted, want Rollout b (another shard's) as controller: it would be garbage-collected with a", copyA, meta.OwnerReferences)
	}
	s.waitEventSaying("b", "ConfigCopyHandedOver", copyA)
}

// A promotion that changes a ConfigMap writes the new content into a copy
// that the primary's running pods do not read, and points the primary's
// template at it. The kubelet refreshes a mounted ConfigMap in running pods
// within about a minute: an overwritten copy would hand the old version's
// pods, serving until the rolling update replaces them, a configuration
// they were never released with. The next change goes back to the first
// copy, which by then only replaced pods read.
func TestAPromotionNeverRewritesTheCopyTheRunningPrimaryReads(t *testing.T) {
	s := newStory(t)
	s.createConfig(false, "podinfo-config", map[string]string{"color": "blue"})
	s.deploy("podinfo", "podinfo:1.0", withConfigMapEnv("podinfo-config", "color"))
	s.initialized("podinfo")
	first := s.primaryConfigRef("podinfo")
	_, meta := s.configData(false, first)
	firstVersion := meta.ResourceVersion

	s.releaseConfig("podinfo", "podinfo-config", "green")
	second := s.primaryConfigRef("podinfo")
	if second == first {
		t.Fatalf("after the release the primary reads %s, the copy its previous pods read", first)
	}
	data, meta := s.configData(false, first)
	if data["color"] != "blue" || meta.ResourceVersion != firstVersion {
		t.Errorf("the copy %s, which the previous pods read, was written by the promotion: %v (resourceVersion %s, was %s)", first, data, meta.ResourceVersion, firstVersion)
	}
	if data, _ := s.configData(false, second); data["color"] != "green" {
		t.Errorf("the primary's copy %s holds %v, want color=green", second, data)
	}
	_, meta = s.configData(false, second)
	secondVersion := meta.ResourceVersion

	s.releaseConfig("podinfo", "podinfo-config", "red")
	if got := s.primaryConfigRef("podinfo"); got != first {
		t.Errorf("after the next release the primary reads %s, want %s again", got, first)
	}
	if data, _ := s.configData(false, first); data["color"] != "red" {
		t.Errorf("the primary's copy %s holds %v, want color=red", first, data)
	}
	if data, meta := s.configData(false, second); data["color"] != "green" || meta.ResourceVersion != secondVersion {
		t.Errorf("the copy %s, which the previous pods read, was written by the promotion: %v", second, data)
	}
}

// A Sluice from before the alternate copies promoted a configuration by
// writing the copy the stable pods read, keeping its stable content as
// <copy>-stable and listing it on the primary. Upgraded mid-promotion, an
// abort still writes that content back: a stable pod that restarts reads
// the stable configuration.
func TestAnAbortAfterAnUpgradeRestoresTheCopyAnOlderSluiceOverwrote(t *testing.T) {
	s := newStory(t)
	s.createConfig(false, "podinfo-config", map[string]string{"color": "blue"})
	s.deploy("podinfo", "podinfo:1.0", withConfigMapEnv("podinfo-config", "color"))
	ro := s.initialized("podinfo", iterations(1), progressDeadline(2))
	stableTemplate := s.getDeployment("podinfo-primary").Spec.Template.Annotations[rollout.RevisionAnnotation]
	stableCopy := s.primaryConfigRef("podinfo")
	s.holdWhen(func(d *appsv1.Deployment) bool {
		return d.Name == "podinfo-primary" && d.Spec.Template.Annotations[rollout.RevisionAnnotation] != stableTemplate
	})
	s.setConfig(false, "podinfo-config", map[string]string{"color": "green"})
	s.waitStalled("podinfo", "PromotionStalled")

	// What the older Sluice would have left: the new template reads the
	// stable pods' copy, overwritten, and its snapshot is listed.
	snapshot := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: stableCopy + "-stable", Namespace: s.ns}, Data: map[string]string{"color": "blue"}}
	s.must(controllerutil.SetControllerReference(ro, snapshot, k8sClient.Scheme()))
	s.must(k8sClient.Create(s.ctx, snapshot))
	s.setConfig(false, stableCopy, map[string]string{"color": "green"})
	s.editDeployment("podinfo-primary", func(p *appsv1.Deployment) {
		p.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name = stableCopy
		p.Annotations[workload.StableConfigsAnnotation] = "configmap/" + stableCopy
	})

	s.ask("podinfo", sluicev1.ActionAbort, "sre")
	s.waitEvent("podinfo", "PrimaryRestored")
	if got := s.primaryConfigRef("podinfo"); got != stableCopy {
		t.Errorf("after the abort the primary reads %s, want %s", got, stableCopy)
	}
	if got, _ := s.configData(false, stableCopy); got["color"] != "blue" {
		t.Errorf("after the abort %s holds %v, want the stable blue back from its snapshot", stableCopy, got)
	}
}

// The same leftover of an older Sluice, b's primary reading a's copy,
// while a keeps releasing. a's promotions take turns between its two
// copies, so the second would write the one b's running pods read. It
// hands that copy to b instead, and writes one under a name of its own.
func TestAPromotionNeverWritesACopyAnotherRolloutsPrimaryReads(t *testing.T) {
	s := newStory(t)
	s.twoSharing(false, progressDeadline(2))
	copyA := s.primaryConfigRef("a")
	s.readCopyOf("b", false, copyA)
	// b's releases never get a ready canary: its primary stays as it is.
	s.holdWhen(func(d *appsv1.Deployment) bool { return d.Name == "b" })

	for _, color := range []string{"green", "red"} {
		s.releaseConfig("a", "shared", color)
		if got, _ := s.configData(false, s.primaryConfigRef("a")); got["color"] != color {
			t.Errorf("after releasing %s a's primary reads %v", color, got)
		}
		if got, _ := s.configData(false, copyA); got["color"] != "blue" {
			t.Fatalf("after a released %s, %s, which b's running primary reads, holds %v: a's promotion wrote it", color, copyA, got)
		}
	}
	if s.primaryConfigRef("a") == copyA {
		t.Errorf("a's primary reads %s, which b's primary reads too", copyA)
	}
	_, meta := s.configData(false, copyA)
	if !metav1.IsControlledBy(&metav1.ObjectMeta{OwnerReferences: meta.OwnerReferences}, s.getRollout("b")) {
		t.Errorf("%s has owners %v, want Rollout b, whose primary reads it, as controller", copyA, meta.OwnerReferences)
	}
	s.waitEventSaying("b", "ConfigCopyHandedOver", copyA)
}

// A Deployment that mounts a service account's token Secret (the kind the
// token controller kept before bound tokens, which some apps still read to
// reach the API as another account) is released like any other. That
// Secret is no release's configuration: it belongs to the token
// controller, and the API server refuses a copy that names no service
// account. The primary reads it where it is, and nothing is copied.
func TestATargetReadingAServiceAccountTokenIsReleasedWithThePrimaryReadingIt(t *testing.T) {
	s := newStory(t)
	s.must(k8sClient.Create(s.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reporter", Namespace: s.ns}}))
	s.must(k8sClient.Create(s.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "reporter-token", Namespace: s.ns, Annotations: map[string]string{corev1.ServiceAccountNameKey: "reporter"}},
		Type:       corev1.SecretTypeServiceAccountToken,
		Data:       map[string][]byte{corev1.ServiceAccountTokenKey: []byte("a-token")},
	}))
	s.deploy("podinfo", "podinfo:1.0", withConfigEnv(true, "reporter-token", corev1.ServiceAccountTokenKey))
	s.initialized("podinfo")
	if got := s.primaryConfigRef("podinfo"); got != "reporter-token" {
		t.Errorf("the primary reads Secret %s, want the token's own reporter-token", got)
	}

	s.setImage("podinfo", "podinfo:2.0")
	s.waitPhase("podinfo", sluicev1.PhaseSucceeded, storyTimeout)
	if got := s.primaryConfigRef("podinfo"); got != "reporter-token" {
		t.Errorf("after the release the primary reads Secret %s, want reporter-token", got)
	}
	secrets := &corev1.SecretList{}
	s.must(k8sClient.List(s.ctx, secrets, client.InNamespace(s.ns)))
	for _, sec := range secrets.Items {
		if sec.Name != "reporter-token" {
			t.Errorf("Secret %s (type %s) was made: want no copy of the token", sec.Name, sec.Type)
		}
	}
}

// pointAt makes Deployment name read its first env variable from
// ConfigMap cm instead (as kustomize's configMapGenerator does: a new name
// for each content) and waits until that revision is promoted.
func (s *story) pointAt(name, cm string) {
	s.t.Helper()
	before := s.getRollout(name).Status.StableRevision
	s.editDeployment(name, func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name = cm
	})
	s.eventually(storyTimeout, name+" promotes the revision reading "+cm, func() error {
		ro := s.getRollout(name)
		if ro.Status.Phase != sluicev1.PhaseSucceeded || ro.Status.StableRevision == before {
			return fmt.Errorf("phase %s, stable %s (was %s): %s", ro.Status.Phase, ro.Status.StableRevision, before, ro.Status.Message)
		}
		return nil
	})
}

// copiesOf lists the ConfigMaps Rollout name controls.
func (s *story) copiesOf(name string) []string {
	s.t.Helper()
	ro := s.getRollout(name)
	list := &corev1.ConfigMapList{}
	s.must(k8sClient.List(s.ctx, list, client.InNamespace(s.ns)))
	var out []string
	for _, cm := range list.Items {
		if metav1.IsControlledBy(&cm, ro) {
			out = append(out, cm.Name)
		}
	}
	return out
}

// A team generates its ConfigMap with kustomize: each content change is a
// new name, and the Deployment points at it. Each release makes the primary
// a copy of the new one; the copies no pod of the primary reads any more go
// once the release after has ended (kubernetes-sigs/kustomize#1806 is the
// same leftover for the originals). The previous release's are kept: the
// primary keeps its template until the next promotion, and a rolling update
// undone by hand finds them. A copy another Rollout's primary reads (as an
// older Sluice left it) is handed over to that Rollout, never deleted.
func TestCopiesNoPodReadsAnyMoreGoAfterTheNextRelease(t *testing.T) {
	s := newStory(t)
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		s.createConfig(false, "app-config-"+v, map[string]string{"color": v})
	}
	s.deploy("podinfo", "podinfo:1.0", withConfigMapEnv("app-config-v1", "color"))
	s.initialized("podinfo")
	s.createConfig(false, "b-config", map[string]string{"color": "b"})
	s.deploy("b", "b:1.0", withConfigMapEnv("b-config", "color"))
	s.initialized("b")
	s.readCopyOf("b", false, "app-config-v1-primary")

	s.pointAt("podinfo", "app-config-v2")
	s.pointAt("podinfo", "app-config-v3")
	want := []string{"app-config-v2-primary", "app-config-v3-primary"}
	s.eventually(storyTimeout, "v1's copy handed over to b", func() error {
		if got := s.copiesOf("podinfo"); !slices.Equal(got, want) {
			return fmt.Errorf("after v3, podinfo's copies are %v, want %v: v2's (the stable template kept for an undo) stays, and v1's goes to b, whose primary reads it", got, want)
		}
		return nil
	})
	if got := s.copiesOf("b"); !slices.Contains(got, "app-config-v1-primary") {
		t.Errorf("b's copies are %v, want app-config-v1-primary, which its primary reads, among them", got)
	}
	s.waitEventSaying("b", "ConfigCopyHandedOver", "app-config-v1-primary")

	s.pointAt("podinfo", "app-config-v4")
	want = []string{"app-config-v3-primary", "app-config-v4-primary"}
	s.eventually(storyTimeout, "v2's copy deleted", func() error {
		if got := s.copiesOf("podinfo"); !slices.Equal(got, want) {
			return fmt.Errorf("podinfo's copies are %v, want %v", got, want)
		}
		return nil
	})
	s.waitEventSaying("podinfo", "ConfigCopiesDeleted", "app-config-v2-primary")
	if got := s.primaryConfigRef("podinfo"); got != "app-config-v4-primary" {
		t.Errorf("the primary reads %s, want app-config-v4-primary", got)
	}
	if _, meta := s.configData(false, "app-config-v1-primary"); meta.Name == "" {
		t.Errorf("app-config-v1-primary, which b's primary reads, is gone")
	}
}
