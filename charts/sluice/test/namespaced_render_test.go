package test

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// crdGrants are the only cluster-wide grants of a manager that serves some
// namespaces: reads of cluster-scoped kinds, the metadata-only watch of
// CRDs and the ClusterMetricTemplates.
var crdGrants = []grant{
	{"apiextensions.k8s.io", "customresourcedefinitions", "get"},
	{"apiextensions.k8s.io", "customresourcedefinitions", "list"},
	{"apiextensions.k8s.io", "customresourcedefinitions", "watch"},
	{"sluice.dev", "clustermetrictemplates", "get"},
	{"sluice.dev", "clustermetrictemplates", "list"},
	{"sluice.dev", "clustermetrictemplates", "watch"},
}

// withoutCRDs drops the grants on cluster-scoped kinds: what a Role can
// grant of a ClusterRole.
func withoutCRDs(gs []grant) []grant {
	return slices.DeleteFunc(slices.Clone(gs), func(g grant) bool {
		return g.group == "apiextensions.k8s.io" || g.resource == "clustermetrictemplates"
	})
}

// typed converts every rendered object of kind to T.
func typed[T any](t *testing.T, r *rendered, kind string) []*T {
	t.Helper()
	var out []*T
	for _, o := range r.objects {
		if o.GetKind() != kind {
			continue
		}
		v := new(T)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, v); err != nil {
			t.Fatalf("%s %s: %v", kind, o.GetName(), err)
		}
		out = append(out, v)
	}
	return out
}

func TestWatchNamespacesRenderARolePerNamespaceAndNothingClusterWideButCRDReads(t *testing.T) {
	routers := map[string]string{
		"no router":   "",
		"Gateway API": "routers: {gatewayAPI: {enabled: true}}",
		"Istio":       "routers: {istio: {enabled: true}}",
		"both":        "routers: {gatewayAPI: {enabled: true}, istio: {enabled: true}}",
	}
	for name, routerValues := range routers {
		t.Run(name, func(t *testing.T) {
			// The rules of a manager of every namespace, with the same routers.
			want := withoutCRDs(grants(render(t, routerValues).clusterRole().Rules))
			r := render(t, routerValues+"\nwatchNamespaces: [team-a, team-b, team-a]")

			expectArgs(t, container(r.manager()).Args, "--watch-namespaces=team-a,team-b")

			// No ClusterRole grants anything on namespaced objects, and every
			// ClusterRoleBinding binds one of those.
			clusterRoles := map[string]bool{}
			for _, cr := range typed[rbacv1.ClusterRole](t, r, "ClusterRole") {
				if gs := grants(cr.Rules); !slices.Equal(gs, crdGrants) {
					t.Errorf("ClusterRole %s grants %v; with watchNamespaces a ClusterRole may only read CRDs and ClusterMetricTemplates %v", cr.Name, gs, crdGrants)
				}
				clusterRoles[cr.Name] = true
			}
			if len(clusterRoles) == 0 {
				t.Errorf("no ClusterRole reads CRDs: the manager's CRD watch would be Forbidden; objects %v", r.kinds())
			}
			for _, b := range typed[rbacv1.ClusterRoleBinding](t, r, "ClusterRoleBinding") {
				if b.RoleRef.Kind != "ClusterRole" || !clusterRoles[b.RoleRef.Name] {
					t.Errorf("ClusterRoleBinding %s binds %s %s, not the chart's CRD ClusterRole", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
				}
				expectSubjectIsTheManager(t, b.Name, b.Subjects)
			}

			// One Role with the ClusterRole's rules, and its binding, per
			// watched namespace; the leader election Role stays in the
			// release namespace.
			roles := map[string]*rbacv1.Role{}
			for _, role := range typed[rbacv1.Role](t, r, "Role") {
				if strings.HasSuffix(role.Name, "-leader-election") {
					if role.Namespace != releaseNS {
						t.Errorf("leader election Role in %s, want %s", role.Namespace, releaseNS)
					}
					continue
				}
				if roles[role.Namespace] != nil {
					t.Errorf("two Roles in %s", role.Namespace)
				}
				roles[role.Namespace] = role
			}
			for _, ns := range []string{"team-a", "team-b"} {
				role := roles[ns]
				if role == nil {
					t.Errorf("no Role in the watched namespace %s; objects %v", ns, r.kinds())
					continue
				}
				if gs := grants(role.Rules); !slices.Equal(gs, want) {
					t.Errorf("Role %s/%s grants\n %v\nwant the ClusterRole's rules\n %v", ns, role.Name, gs, want)
				}
				delete(roles, ns)
				bound := false
				for _, b := range typed[rbacv1.RoleBinding](t, r, "RoleBinding") {
					if b.Namespace == ns && b.RoleRef.Kind == "Role" && b.RoleRef.Name == role.Name {
						bound = true
						expectSubjectIsTheManager(t, b.Name, b.Subjects)
					}
				}
				if !bound {
					t.Errorf("Role %s/%s is bound to nobody", ns, role.Name)
				}
			}
			for ns := range roles {
				t.Errorf("a Role in %s, which is not watched", ns)
			}
		})
	}
}

func expectSubjectIsTheManager(t *testing.T, binding string, subjects []rbacv1.Subject) {
	t.Helper()
	want := rbacv1.Subject{Kind: "ServiceAccount", Name: "sluice", Namespace: releaseNS}
	if len(subjects) != 1 || subjects[0] != want {
		t.Errorf("binding %s subjects = %+v, want the manager's ServiceAccount %+v only", binding, subjects, want)
	}
}

func TestEveryShardOfATenantsSluiceWatchesItsNamespaces(t *testing.T) {
	r := render(t, "watchNamespaces: [team-a]\nshards: [blue]")
	for _, d := range typed[appsv1.Deployment](t, r, "Deployment") {
		if strings.Contains(d.Name, "-manager") {
			expectArgs(t, container(d).Args, "--watch-namespaces=team-a")
		}
	}
	if args := container(render(t, "").manager()).Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--watch-namespaces") }) {
		t.Errorf("without watchNamespaces the manager got the flag: %v", args)
	}
}

func TestATenantsSluiceMayReadItsNotificationSecretAndNoOtherOutsideItsNamespaces(t *testing.T) {
	for _, tc := range []struct {
		secret, roleNS, name string
	}{
		{"ops/notify", "ops", "notify"},
		{"notify", releaseNS, "notify"},
		// In a watched namespace its Role already grants it.
		{"team-a/notify", "", ""},
	} {
		t.Run(tc.secret, func(t *testing.T) {
			r := render(t, "watchNamespaces: [team-a]\nnotifications: {secret: "+tc.secret+"}")
			var role *rbacv1.Role
			for _, ro := range typed[rbacv1.Role](t, r, "Role") {
				if strings.HasSuffix(ro.Name, "-notify-secret") {
					role = ro
				}
			}
			if tc.roleNS == "" {
				if role != nil {
					t.Errorf("a notification Secret Role in %s, though its namespace is watched", role.Namespace)
				}
				return
			}
			want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{tc.name}, Verbs: []string{"get"}}}
			if role == nil || role.Namespace != tc.roleNS || !slices.EqualFunc(role.Rules, want, policyRuleEqual) {
				t.Fatalf("notification Secret Role = %+v, want in %s the rules %+v", role, tc.roleNS, want)
			}
			bound := false
			for _, b := range typed[rbacv1.RoleBinding](t, r, "RoleBinding") {
				if b.Namespace == tc.roleNS && b.RoleRef.Name == role.Name {
					bound = true
					expectSubjectIsTheManager(t, b.Name, b.Subjects)
				}
			}
			if !bound {
				t.Error("the notification Secret Role is bound to nobody")
			}
		})
	}
	// A manager of every namespace reads it through its ClusterRole.
	if r := render(t, "notifications: {secret: ops/notify}"); r.find("Role", "-notify-secret") != nil {
		t.Error("a notification Secret Role without watchNamespaces")
	}
}

func policyRuleEqual(a, b rbacv1.PolicyRule) bool {
	return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) &&
		slices.Equal(a.ResourceNames, b.ResourceNames) && slices.Equal(a.Verbs, b.Verbs)
}

func TestAWatchNamespaceThatCannotBeANamespaceFailsTheRender(t *testing.T) {
	for _, bad := range []string{"Team_A", "team-a/x", strings.Repeat("a", 64)} {
		_, err := tryRender("watchNamespaces: [team-a, " + bad + "]")
		if err == nil || !strings.Contains(err.Error(), "watchNamespaces") || !strings.Contains(err.Error(), bad) {
			t.Errorf("rendering with watchNamespaces [team-a, %s]: %v, want an error naming the value and the entry", bad, err)
		}
	}
}
