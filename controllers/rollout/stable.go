package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// StableTemplateAnnotation on the primary Deployment holds, from the start of
// a promotion until the next one, the pod template of the stable revision it
// ran before (JSON), so that an abort during the promotion can put it back;
// StableRevisionAnnotation names that revision.
const (
	StableTemplateAnnotation = "sluice.dev/stable-template"
	StableRevisionAnnotation = "sluice.dev/stable-revision"
)

// StableConfigsAnnotation on the primary lists, with the stable template,
// the -primary ConfigMap and Secret copies whose stable content the
// promotion overwrote; each is kept beside it as <copy>-stable, so that an
// abort gives the stable pods their configuration back too.
const StableConfigsAnnotation = "sluice.dev/stable-configs"

// stableCopyName names the snapshot of a -primary copy's stable content.
func stableCopyName(copyName string) string { return copyName + "-stable" }

// setStableConfigs records the copies kept (configRef keys) on p.
func setStableConfigs(p *appsv1.Deployment, kept []string) {
	if len(kept) == 0 {
		delete(p.Annotations, StableConfigsAnnotation)
		return
	}
	p.Annotations[StableConfigsAnnotation] = strings.Join(kept, ",")
}

// stableConfigs returns the copies p lists as kept.
func stableConfigs(p *appsv1.Deployment) []configRef {
	var out []configRef
	for _, k := range strings.Split(p.Annotations[StableConfigsAnnotation], ",") {
		kind, name, ok := strings.Cut(k, "/")
		if !ok || name == "" || (configKind(kind) != kindConfigMap && configKind(kind) != kindSecret) {
			continue
		}
		out = append(out, configRef{Kind: configKind(kind), Name: name})
	}
	return out
}

// ConfigStampAnnotation on the target's pod template is the checksum of the
// ConfigMaps and Secrets its pods were started with. Sluice sets it when it
// scales the target up for a run and changes it when the configuration
// changes mid-run, so the canary's pods restart and read the new one before
// any check counts. It is not part of the revision.
const ConfigStampAnnotation = "sluice.dev/config-checksum"

// keepStableTemplate records the primary's current template as the stable
// one before a promotion replaces it; a primary already promoting (its
// revision is not the stable one) keeps what it recorded.
func keepStableTemplate(p *appsv1.Deployment, stable string) error {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	if p.Annotations[RevisionAnnotation] != stable {
		return nil
	}
	raw, err := json.Marshal(p.Spec.Template)
	if err != nil {
		return fmt.Errorf("keeping the stable template of %s: %w", p.Name, err)
	}
	p.Annotations[StableTemplateAnnotation] = string(raw)
	p.Annotations[StableRevisionAnnotation] = stable
	return nil
}

// stableTemplate returns the template kept for revision rev, or nil when the
// primary holds none for it.
func stableTemplate(p *appsv1.Deployment, rev string) (*corev1.PodTemplateSpec, error) {
	raw := p.Annotations[StableTemplateAnnotation]
	if raw == "" || p.Annotations[StableRevisionAnnotation] != rev {
		return nil, nil
	}
	tmpl := &corev1.PodTemplateSpec{}
	if err := json.Unmarshal([]byte(raw), tmpl); err != nil {
		return nil, fmt.Errorf("reading the stable template kept on %s: %w", p.Name, err)
	}
	return tmpl, nil
}

// configStamp is the checksum of the configuration a pod template uses.
func configStamp(configs map[string]string) string {
	h := sha256.New()
	for _, k := range sortedKeys(configs) {
		_, _ = fmt.Fprintf(h, "%s=%s\n", k, configs[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// needsConfigRestart reports whether the target's pods were started with
// another configuration than the current one. A target never stamped (its
// pods predate Sluice) is left alone: restarting them would gain nothing.
func needsConfigRestart(target *appsv1.Deployment, configs map[string]string) bool {
	have, ok := target.Spec.Template.Annotations[ConfigStampAnnotation]
	return ok && have != configStamp(configs)
}
