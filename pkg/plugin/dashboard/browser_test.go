package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	sluicev1 "github.com/sluice-dev/sluice/api/v1alpha1"
	"github.com/sluice-dev/sluice/pkg/plugin"
)

// chromiumPath is Debian's chromium, which `make chromium` installs.
const chromiumPath = "/usr/bin/chromium"

// screenshotsEnv names a directory the stories save their screenshots to
// (docs/images refreshes the documentation's).
const screenshotsEnv = "SLUICE_SCREENSHOTS"

// startDashboard runs `kubectl sluice dashboard -A` as the user of
// kubeconfig on a free port until the test ends, and returns its URL.
func startDashboard(t *testing.T, kubeconfig string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- plugin.Run(ctx, []string{"dashboard", "-A", "--address", "127.0.0.1:0", "--kubeconfig", kubeconfig},
			genericiooptions.IOStreams{In: strings.NewReader(""), Out: pw, ErrOut: &stderr})
		_ = pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != plugin.ExitOK {
				t.Errorf("dashboard exited %d: %s", code, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("dashboard did not stop within 10s of its context ending")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err != nil {
		t.Fatalf("dashboard printed no address: %v (stderr %q)", err, stderr.String())
	}
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if url == "" {
		t.Fatalf("no URL in %q", line)
	}
	return url
}

// browser starts a headless chromium for the test and returns a tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run `make chromium` (it installs Debian's chromium)", chromiumPath)
	}
	// Not t.TempDir: chromium's helper processes may still write to the
	// profile for a moment after the browser exits.
	profile, err := os.MkdirTemp("", "sluice-dashboard-chromium")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The page's script errors are the test's.
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			t.Errorf("script error in the page: %s", e.ExceptionDetails.Error())
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// waitFor waits until a JavaScript expression is true in the page.
func waitFor(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	var ok bool
	if err := chromedp.Run(tab, chromedp.Poll(expr, &ok, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		var page string
		_ = chromedp.Run(tab, chromedp.Text("main", &page, chromedp.ByQuery))
		t.Fatalf("%s: %v\npage:\n%s", what, err, page)
	}
}

// text is the text of the first element matching a CSS selector.
func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	var s string
	if err := chromedp.Run(tab, chromedp.Text(sel, &s, chromedp.ByQuery)); err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// screenshot saves the page as name.png when SLUICE_SCREENSHOTS is set.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	var png []byte
	if err := chromedp.Run(tab, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// row is the overview row of a Rollout, as a CSS selector.
func row(ns, name string) string { return fmt.Sprintf(`tr[data-rollout="%s/%s"]`, ns, name) }

func progressing(st *sluicev1.RolloutStatus) {
	now := metav1.Now()
	st.Phase = sluicev1.PhaseProgressing
	st.CanaryWeight = 20
	st.CurrentStepIndex = 1
	st.StepProgress = "2/4"
	st.FailedChecks = 1
	st.StableRevision, st.CanaryRevision = "5d8f9c", "7c9a1e"
	st.StepStartedAt = &metav1.Time{Time: now.Add(-95 * time.Second)}
	st.Message = "step 2/4: canary at 20%, holding for the analysis interval"
	st.Conditions = []metav1.Condition{
		condition(sluicev1.ConditionReady, metav1.ConditionFalse, "Progressing", "release under way"),
		condition(sluicev1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "release under way"),
		condition(sluicev1.ConditionGate, metav1.ConditionTrue, "GateClosed", "confirm-promotion gate approve answered closed"),
	}
	st.Metrics = []sluicev1.MetricStatus{{Name: sluicev1.MetricRequestSuccessRate, Value: "99.52", Verdict: "Pass", CheckedAt: &now}}
}

func succeeded(st *sluicev1.RolloutStatus) {
	st.Phase = sluicev1.PhaseSucceeded
	st.StableRevision = "7c9a1e"
	st.Message = "revision 7c9a1e promoted"
	st.Conditions = []metav1.Condition{condition(sluicev1.ConditionReady, metav1.ConditionTrue, "Succeeded", "revision 7c9a1e promoted")}
}

func failed(st *sluicev1.RolloutStatus) {
	st.Phase = sluicev1.PhaseFailed
	st.FailedRevision = "3b1f0d"
	st.StableRevision = "5d8f9c"
	st.FailedChecks = 5
	st.Message = "rolled back: 5 failed checks"
	st.Conditions = []metav1.Condition{
		condition(sluicev1.ConditionReady, metav1.ConditionFalse, "RolledBack", "rolled back: 5 failed checks"),
		condition(sluicev1.ConditionStalled, metav1.ConditionTrue, "RolledBack", "rolled back: 5 failed checks"),
	}
}

func TestDashboardInABrowser(t *testing.T) {
	c := testCluster(t)
	shop, web := c.newNamespace(t, "shop"), c.newNamespace(t, "web")
	podinfo := c.createRollout(t, shop, "podinfo", canary(10, 20, 0, 50),
		withAnalysis(sluicev1.MetricRequestSuccessRate, 99, "approve"))
	c.setStatus(t, podinfo, progressing)
	c.recordEvent(t, podinfo, "Normal", "NewRevision", "new revision 7c9a1e: starting the release")
	c.recordEvent(t, podinfo, "Warning", "CheckFailed", "request-success-rate 98.1 is below 99")
	frontend := c.createRollout(t, web, "frontend")
	c.setStatus(t, frontend, succeeded)
	backend := c.createRollout(t, web, "backend", canary(25, 50))
	c.setStatus(t, backend, failed)

	tab := browser(t)
	url := startDashboard(t, c.adminKubeconfig)

	t.Run("the overview lists every Rollout by namespace and marks those that need a person", func(t *testing.T) {
		if err := chromedp.Run(tab, chromedp.Navigate(url), chromedp.WaitVisible(row(web, "frontend"), chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, tab, "every Rollout listed", fmt.Sprintf(`!!document.querySelector('%s') && !!document.querySelector('%s')`,
			row(shop, "podinfo"), row(web, "backend")))
		for _, tc := range []struct{ sel, want string }{
			{row(shop, "podinfo"), "Progressing"},
			{row(shop, "podinfo"), "2/4"},
			{row(shop, "podinfo"), "80% / 20%"},
			{row(shop, "podinfo") + " .attention-cell", "waiting at a gate: confirm-promotion gate approve answered closed"},
			{row(web, "backend") + " .attention-cell", "failed"},
			{row(web, "frontend"), "Succeeded"},
			{fmt.Sprintf(`section[data-namespace="%s"] h2`, web), "Namespace " + web},
		} {
			if got := text(t, tab, tc.sel); !strings.Contains(got, tc.want) {
				t.Errorf("%s shows %q, want %q in it", tc.sel, got, tc.want)
			}
		}
		if got := text(t, tab, row(web, "frontend")+" .attention-cell"); got != "" {
			t.Errorf("a succeeded Rollout is marked as needing a person: %q", got)
		}
		screenshot(t, tab, "dashboard-overview")
	})

	t.Run("a phase change made through the API appears without a reload", func(t *testing.T) {
		if err := chromedp.Run(tab, chromedp.Evaluate(`window.sluiceNotReloaded = true`, nil)); err != nil {
			t.Fatal(err)
		}
		c.setStatus(t, frontend, func(st *sluicev1.RolloutStatus) {
			st.Phase = sluicev1.PhaseProgressing
			st.CanaryWeight = 10
			st.StepProgress = "1/2"
		})
		waitFor(t, tab, "the new phase shown", fmt.Sprintf(`document.querySelector('%s .phase').textContent === "Progressing"`, row(web, "frontend")))
		var still bool
		if err := chromedp.Run(tab, chromedp.Evaluate(`window.sluiceNotReloaded === true`, &still)); err != nil || !still {
			t.Errorf("the page was reloaded (%v)", err)
		}
	})

	t.Run("the Rollout page shows steps, traffic, metrics, gate, conditions and events", func(t *testing.T) {
		// Following the link changes only the fragment: no page load.
		if err := chromedp.Run(tab, chromedp.Click(row(shop, "podinfo")+" a", chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, tab, "the Rollout page", `!!document.querySelector('#phase')`)
		page := text(t, tab, "main")
		for _, want := range []string{
			"set weight 20%, hold 1m, check", "pause at 20% until promoted",
			"request-success-rate", "99.52", ">= 99, on 100+ requests", "Pass",
			"Gate closed: confirm-promotion gate approve answered closed",
			"GateClosed", "NewRevision", "request-success-rate 98.1 is below 99",
		} {
			if !strings.Contains(page, want) {
				t.Errorf("the Rollout page lacks %q", want)
			}
		}
		if got := text(t, tab, `ol.plan li[aria-current="step"]`); !strings.Contains(got, "set weight 20%") {
			t.Errorf("current step %q, want the second", got)
		}
		// The step's hold of 1m started 95s ago: its checks are due.
		if got := text(t, tab, "#hold-ends"); got != "checks due" {
			t.Errorf("the step moves on %q, want %q", got, "checks due")
		}
		var order bool
		if err := chromedp.Run(tab, chromedp.Evaluate(`main.textContent.indexOf("NewRevision") < main.textContent.indexOf("CheckFailed")`, &order)); err != nil || !order {
			t.Errorf("events are not oldest first (%v)", err)
		}
	})

	t.Run("a button asks for the action as the user, and the page shows it pending", func(t *testing.T) {
		if err := chromedp.Run(tab, chromedp.Click(`button[data-action="pause"]`, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, tab, "the action confirmed", `!!document.querySelector('#action-result .result.ok')`)
		if got := text(t, tab, "#action-result"); !strings.Contains(got, "asked to pause (as "+testAdmin+")") {
			t.Errorf("confirmation %q", got)
		}
		got := c.get(t, podinfo)
		if a, by := got.Annotations[sluicev1.ActionAnnotation], got.Annotations[sluicev1.ActionByAnnotation]; a != "pause" || by != testAdmin {
			t.Errorf("annotations %s=%q %s=%q, want pause by %s", sluicev1.ActionAnnotation, a, sluicev1.ActionByAnnotation, by, testAdmin)
		}
		waitFor(t, tab, "the pending action shown", `(document.querySelector('#pending-action') || {}).textContent === "pause (asked by `+testAdmin+`)"`)
		// The traffic history has a second point once the weight moves.
		time.Sleep(time.Second)
		c.setStatus(t, podinfo, func(st *sluicev1.RolloutStatus) { st.CanaryWeight = 30 })
		waitFor(t, tab, "the traffic history grown", `document.querySelectorAll('svg.history rect.canary').length >= 2`)
		if os.Getenv(screenshotsEnv) != "" {
			time.Sleep(2 * time.Second) // for a picture where the new split shows
		}
		screenshot(t, tab, "dashboard-rollout")
	})

	t.Run("the buttons work from the keyboard", func(t *testing.T) {
		if err := chromedp.Run(tab, chromedp.Focus(`button[data-action="resume"]`, chromedp.ByQuery), chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, tab, "the action confirmed", `document.querySelector('#action-result').textContent.includes("asked to resume")`)
		if a := c.get(t, podinfo).Annotations[sluicev1.ActionAnnotation]; a != "resume" {
			t.Errorf("%s = %q, want resume", sluicev1.ActionAnnotation, a)
		}
	})

	t.Run("a dark system theme gives a dark page", func(t *testing.T) {
		dark := emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}})
		var bg string
		if err := chromedp.Run(tab, dark, chromedp.Evaluate(`getComputedStyle(document.body).backgroundColor`, &bg)); err != nil {
			t.Fatal(err)
		}
		if bg != "rgb(13, 17, 23)" {
			t.Errorf("background %s in the dark theme", bg)
		}
		light := emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}})
		if err := chromedp.Run(tab, light, chromedp.Evaluate(`getComputedStyle(document.body).backgroundColor`, &bg)); err != nil {
			t.Fatal(err)
		}
		if bg != "rgb(255, 255, 255)" {
			t.Errorf("background %s in the light theme", bg)
		}
	})

	t.Run("a user who may not patch Rollouts sees the API server's refusal", func(t *testing.T) {
		viewerURL := startDashboard(t, c.viewerKubeconfig)
		before := c.get(t, backend)
		if err := chromedp.Run(tab, chromedp.Navigate(viewerURL+"#/"+web+"/backend"), chromedp.WaitVisible(`#phase`, chromedp.ByQuery),
			chromedp.Click(`button[data-action="retry"]`, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, tab, "the refusal shown", `!!document.querySelector('#action-result .result.error')`)
		want := fmt.Sprintf(`rollouts.sluice.dev "backend" is forbidden: User "%s" cannot patch resource "rollouts" in API group "sluice.dev" in the namespace "%s"`, testViewer, web)
		if got := text(t, tab, "#action-result"); !strings.Contains(got, want) {
			t.Errorf("the page says %q, want the API server's %q", got, want)
		}
		if got := c.get(t, backend); got.Annotations[sluicev1.ActionAnnotation] != "" || got.ResourceVersion != before.ResourceVersion {
			t.Errorf("the Rollout changed: %v", got.Annotations)
		}
	})

	t.Run("a user who may not list Rollouts sees why the page is empty", func(t *testing.T) {
		strangerURL := startDashboard(t, c.strangerKubeconfig)
		if err := chromedp.Run(tab, chromedp.Navigate(strangerURL)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, tab, "the refusal shown", `!document.querySelector('#problems').hidden`)
		want := fmt.Sprintf(`User "%s" cannot list resource "rollouts" in API group "sluice.dev" at the cluster scope`, testStranger)
		if got := text(t, tab, "#problems"); !strings.Contains(got, want) {
			t.Errorf("the banner says %q, want %q in it", got, want)
		}
	})
}
