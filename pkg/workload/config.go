package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ConfigKind is the kind of a configuration object a pod template uses.
type ConfigKind string

// The kinds of configuration objects.
const (
	KindConfigMap ConfigKind = "configmap"
	KindSecret    ConfigKind = "secret"
)

// ConfigRef is a ConfigMap or Secret a pod template uses.
type ConfigRef struct {
	Kind     ConfigKind
	Name     string
	Optional bool
}

// Key names a ConfigRef as status.trackedConfigs does: "configmap/NAME" or
// "secret/NAME".
func (r ConfigRef) Key() string { return string(r.Kind) + "/" + r.Name }

// ConfigRefs lists the ConfigMaps and Secrets a pod template uses, through
// volumes, projected volumes, env and envFrom, without duplicates.
func ConfigRefs(spec *corev1.PodSpec) []ConfigRef {
	seen := map[string]int{}
	var refs []ConfigRef
	add := func(kind ConfigKind, name string, optional *bool) {
		if name == "" {
			return
		}
		r := ConfigRef{Kind: kind, Name: name, Optional: optional != nil && *optional}
		if i, ok := seen[r.Key()]; ok {
			// Required anywhere means required.
			refs[i].Optional = refs[i].Optional && r.Optional
			return
		}
		seen[r.Key()] = len(refs)
		refs = append(refs, r)
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			add(KindConfigMap, v.ConfigMap.Name, v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			add(KindSecret, v.Secret.SecretName, v.Secret.Optional)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(KindConfigMap, s.ConfigMap.Name, s.ConfigMap.Optional)
				}
				if s.Secret != nil {
					add(KindSecret, s.Secret.Name, s.Secret.Optional)
				}
			}
		}
	}
	for _, c := range allContainers(spec) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add(KindConfigMap, e.ConfigMapRef.Name, e.ConfigMapRef.Optional)
			}
			if e.SecretRef != nil {
				add(KindSecret, e.SecretRef.Name, e.SecretRef.Optional)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if k := e.ValueFrom.ConfigMapKeyRef; k != nil {
				add(KindConfigMap, k.Name, k.Optional)
			}
			if k := e.ValueFrom.SecretKeyRef; k != nil {
				add(KindSecret, k.Name, k.Optional)
			}
		}
	}
	return refs
}

// CopyNames are the names the primary's copy of the ConfigMap or Secret
// source may take, in the order they are tried: <source>-primary, the name
// Flagger gives it too, then <source>-<rollout>-primary for when the first
// is someone else's: the team's own object of that name, or the copy of
// another Rollout whose target reads the same source. Each Rollout keeps
// copies of its own, so that no Rollout's promotion changes what another's
// primary reads, and no Rollout's deletion deletes it. A name longer than
// the API allows (with room for the suffix of AltCopyName, and of the
// -stable snapshots an older Sluice made) ends with a hash instead.
func CopyNames(source, rollout string) [2]string {
	return [2]string{
		fitCopyName(PrimaryName(source), source),
		fitCopyName(source+"-"+rollout+PrimarySuffix, source+"/"+rollout),
	}
}

// maxCopyName is the longest copy name whose alternate (AltCopyName) and
// snapshot (StableCopyName) are still valid names: DNS subdomains, at most
// 253 characters. (Names cut before the alternate copies were, stay so.)
const maxCopyName = 253 - max(len(stableSuffix), len(altSuffix))

func fitCopyName(name, seed string) string {
	if len(name) <= maxCopyName {
		return name
	}
	sum := sha256.Sum256([]byte(seed))
	hash := hex.EncodeToString(sum[:])[:10]
	// A cut name must still end its DNS label with a letter or digit.
	prefix := strings.TrimRight(name[:maxCopyName-len(hash)-len(PrimarySuffix)-1], ".-")
	return prefix + "-" + hash + PrimarySuffix
}

// RenameConfigRefs points every reference to a copied ConfigMap or Secret
// at the primary's copy; copied maps ConfigRef keys to the copies' names.
func RenameConfigRefs(spec *corev1.PodSpec, copied map[string]string) {
	rename := func(kind ConfigKind, name *string) {
		if c, ok := copied[ConfigRef{Kind: kind, Name: *name}.Key()]; ok {
			*name = c
		}
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.ConfigMap != nil {
			rename(KindConfigMap, &v.ConfigMap.Name)
		}
		if v.Secret != nil {
			rename(KindSecret, &v.Secret.SecretName)
		}
		if v.Projected != nil {
			for j := range v.Projected.Sources {
				s := &v.Projected.Sources[j]
				if s.ConfigMap != nil {
					rename(KindConfigMap, &s.ConfigMap.Name)
				}
				if s.Secret != nil {
					rename(KindSecret, &s.Secret.Name)
				}
			}
		}
	}
	for _, c := range allContainers(spec) {
		for i := range c.EnvFrom {
			if r := c.EnvFrom[i].ConfigMapRef; r != nil {
				rename(KindConfigMap, &r.Name)
			}
			if r := c.EnvFrom[i].SecretRef; r != nil {
				rename(KindSecret, &r.Name)
			}
		}
		for i := range c.Env {
			vf := c.Env[i].ValueFrom
			if vf == nil {
				continue
			}
			if k := vf.ConfigMapKeyRef; k != nil {
				rename(KindConfigMap, &k.Name)
			}
			if k := vf.SecretKeyRef; k != nil {
				rename(KindSecret, &k.Name)
			}
		}
	}
}

// allContainers returns pointers to the init and regular containers.
func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	out := make([]*corev1.Container, 0, len(spec.InitContainers)+len(spec.Containers))
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// DataChecksum hashes the content of a ConfigMap or Secret.
func DataChecksum(obj client.Object) string {
	h := sha256.New()
	write := func(k string, v []byte) { _, _ = fmt.Fprintf(h, "%d:%s%d:", len(k), k, len(v)); h.Write(v) }
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		for _, k := range sortedKeys(o.Data) {
			write(k, []byte(o.Data[k]))
		}
		for _, k := range sortedKeys(o.BinaryData) {
			write("binary:"+k, o.BinaryData[k])
		}
	case *corev1.Secret:
		for _, k := range sortedKeys(o.Data) {
			write(k, o.Data[k])
		}
		for _, k := range sortedKeys(o.StringData) {
			write(k, []byte(o.StringData[k]))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ConfigStampAnnotation on the target's pod template is the checksum of the
// ConfigMaps and Secrets its pods were started with. Sluice sets it when it
// scales the target up for a run and changes it when the configuration
// changes mid-run, so the canary's pods restart and read the new one before
// any check counts. It is not part of the revision.
const ConfigStampAnnotation = "sluice.dev/config-checksum"

// ConfigStamp is the checksum of the configuration a pod template uses.
func ConfigStamp(configs map[string]string) string {
	h := sha256.New()
	for _, k := range sortedKeys(configs) {
		_, _ = fmt.Fprintf(h, "%s=%s\n", k, configs[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// NeedsConfigRestart reports whether the target's pods (of template) were
// started with another configuration than the current one. A target never
// stamped (its pods predate Sluice) is left alone: restarting them would
// gain nothing.
func NeedsConfigRestart(template *corev1.PodTemplateSpec, configs map[string]string) bool {
	have, ok := template.Annotations[ConfigStampAnnotation]
	return ok && have != ConfigStamp(configs)
}

// AltCopyName names the second copy of a source, beside copyName. A
// promotion that changes a source's content writes it into whichever of the
// two the primary does not read, and points the primary at it: a copy the
// running pods read is never written (the kubelet refreshes a mounted one
// in running pods), and an abort points the primary back at the copy it
// read, which still holds the stable content.
func AltCopyName(copyName string) string { return copyName + altSuffix }

const altSuffix = "-alt"

// StableConfigsAnnotation on the primary lists, with the stable template,
// the -primary ConfigMap and Secret copies whose stable content the
// promotion overwrote; each is kept beside it as <copy>-stable, so that an
// abort gives the stable pods their configuration back too. Only a Sluice
// from before AltCopyName wrote it: it is read for an abort of a promotion
// such a Sluice started.
const StableConfigsAnnotation = "sluice.dev/stable-configs"

// StableCopyName names the snapshot of a -primary copy's stable content
// (StableConfigsAnnotation).
func StableCopyName(copyName string) string { return copyName + stableSuffix }

const stableSuffix = "-stable"

// SetStableConfigs records the copies kept (ConfigRef keys) on the primary.
func SetStableConfigs(p metav1.Object, kept []string) {
	ann := p.GetAnnotations()
	if len(kept) == 0 {
		delete(ann, StableConfigsAnnotation)
		p.SetAnnotations(ann)
		return
	}
	if ann == nil {
		ann = map[string]string{}
	}
	ann[StableConfigsAnnotation] = strings.Join(kept, ",")
	p.SetAnnotations(ann)
}

// StableConfigs returns the copies the primary lists as kept.
func StableConfigs(p metav1.Object) []ConfigRef {
	var out []ConfigRef
	for _, k := range strings.Split(p.GetAnnotations()[StableConfigsAnnotation], ",") {
		kind, name, ok := strings.Cut(k, "/")
		if !ok || name == "" || (ConfigKind(kind) != KindConfigMap && ConfigKind(kind) != KindSecret) {
			continue
		}
		out = append(out, ConfigRef{Kind: ConfigKind(kind), Name: name})
	}
	return out
}
