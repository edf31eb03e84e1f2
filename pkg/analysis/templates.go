package analysis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
)

// metricTemplate is a MetricTemplate or ClusterMetricTemplate a check may use.
type metricTemplate struct {
	// name is how messages name it: "MetricTemplate errors" in the
	// Rollout's namespace, "MetricTemplate team-a/errors" in another one,
	// "ClusterMetricTemplate errors".
	name string
	// secretNamespace is where its credentials Secret is read: the
	// template's own namespace, or the manager's for a
	// ClusterMetricTemplate (empty when the manager has none).
	secretNamespace string
	// namespace is the template's own, empty for a ClusterMetricTemplate.
	namespace string
	spec      sluicev1.MetricTemplateSpec
}

// lookupTemplate reads the template a check refers to and decides whether
// the Rollout may use it.
//
// The tenant-safety rule: a Rollout's author must not make Sluice read
// anything they could not read themselves. So a check uses a MetricTemplate
// of its own namespace, a ClusterMetricTemplate (written by whoever may
// write cluster-scoped objects, and reading its Secret from the manager's
// namespace), or a MetricTemplate of another namespace that lists the
// Rollout's namespace in its sluice.dev/shared-with annotation: the
// template's owner, not the Rollout's author, decides that its query and
// the credentials of its namespace serve other namespaces.
//
// Templates are read from the API server, not a cache (the manager keeps
// none of them): within one check (see withTemplateMemo) the template is
// read once, however many times the check's calls ask for it.
func (p *Prometheus) lookupTemplate(ctx context.Context, ro *sluicev1.Rollout, ref *sluicev1.MetricTemplateReference) (*metricTemplate, error) {
	m, ok := ctx.Value(templateMemoKey{}).(*templateMemo)
	if !ok {
		return p.readTemplate(ctx, ro, ref)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := templateKey{kind: ref.Kind, namespace: ro.Namespace + "/" + ref.Namespace, name: ref.Name}
	if got, ok := m.read[key]; ok {
		return got.tpl, got.err
	}
	tpl, err := p.readTemplate(ctx, ro, ref)
	if m.read == nil {
		m.read = map[templateKey]templateRead{}
	}
	m.read[key] = templateRead{tpl, err}
	return tpl, err
}

// templateMemo keeps the templates read during one check: whether its
// query waits for its window, then the query (or a compare check's two
// sides, queried at once) read the template once between them, and see
// the same version of it.
type templateMemo struct {
	mu   sync.Mutex
	read map[templateKey]templateRead
}

type templateMemoKey struct{}

type templateKey struct{ kind, namespace, name string }

type templateRead struct {
	tpl *metricTemplate
	err error
}

// withTemplateMemo gives the calls of one check under ctx one read of
// each template.
func withTemplateMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, templateMemoKey{}, &templateMemo{})
}

// readTemplate is lookupTemplate without the memo.
func (p *Prometheus) readTemplate(ctx context.Context, ro *sluicev1.Rollout, ref *sluicev1.MetricTemplateReference) (*metricTemplate, error) {
	if ref.Kind == sluicev1.KindClusterMetricTemplate {
		cmt := &sluicev1.ClusterMetricTemplate{}
		name := "ClusterMetricTemplate " + ref.Name
		if err := p.reader.Get(ctx, client.ObjectKey{Name: ref.Name}, cmt); err != nil {
			return nil, readError(name, err)
		}
		return &metricTemplate{name: name, secretNamespace: p.opts.ClusterSecretNamespace, spec: cmt.Spec}, nil
	}
	ns := ref.Namespace
	name := "MetricTemplate " + ref.Name
	if ns == "" || ns == ro.Namespace {
		ns = ro.Namespace
	} else {
		name = "MetricTemplate " + ns + "/" + ref.Name
	}
	mt := &sluicev1.MetricTemplate{}
	if err := p.reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, mt); err != nil {
		return nil, readError(name, err)
	}
	if ns != ro.Namespace && !sharedWith(mt, ro.Namespace) {
		return nil, fmt.Errorf("%s is not shared with namespace %s: its owner may list it in the annotation %s",
			name, ro.Namespace, sluicev1.SharedWithAnnotation)
	}
	return &metricTemplate{name: name, secretNamespace: mt.Namespace, namespace: mt.Namespace, spec: mt.Spec}, nil
}

// readError says plainly that a template is missing.
func readError(name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s not found", name)
	}
	return fmt.Errorf("reading %s: %w", name, err)
}

// sharedWith reports whether a MetricTemplate's owner lets Rollouts of
// namespace ns use it.
func sharedWith(mt *sluicev1.MetricTemplate, ns string) bool {
	list, ok := mt.Annotations[sluicev1.SharedWithAnnotation]
	if !ok {
		return false
	}
	names := strings.Split(list, ",")
	for i := range names {
		names[i] = strings.TrimSpace(names[i])
	}
	return slices.Contains(names, "*") || slices.Contains(names, ns)
}
