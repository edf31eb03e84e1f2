package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

const testName = "localhost/sluice-test:1.2.3"

var testCreated = time.Unix(1_700_000_000, 0).UTC()

// specOption changes one input of the test image.
type specOption func(*Spec)

// testSpec is a small image: one executable with fixed content, written into
// a fresh temporary directory so that host paths differ between builds.
func testSpec(t *testing.T, content string, opts ...specOption) Spec {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte(content), 0o700); err != nil {
		t.Fatal(err)
	}
	s := Spec{
		Files:      []File{{Src: src, Dest: "/app/bin/tool", Mode: 0o750}},
		Entrypoint: []string{"/app/bin/tool", "--serve"},
		User:       "65532:65532",
		Labels: map[string]string{
			"org.opencontainers.image.title":  "sluice-test",
			"org.opencontainers.image.source": "https://github.com/sluice-dev/sluice",
		},
		Created:  testCreated,
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Tmp:      true,
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// build writes spec into an archive and returns its digest and path.
func build(t *testing.T, spec Spec) (v1.Hash, string) {
	t.Helper()
	tag, err := ParseName(testName)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	d, err := BuildArchive(spec, tag, out)
	if err != nil {
		t.Fatalf("BuildArchive: %v", err)
	}
	return d, out
}

// readBack unpacks the archive and opens it with ggcr's layout package, as a
// consumer of OCI layouts would; it returns the index's only image and the
// annotations of its entry.
func readBack(t *testing.T, archive string) (v1.Image, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	untar(t, archive, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, im.Manifests[0].Annotations
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTheSameInputsGiveTheSameDigestAndArchive(t *testing.T) {
	d1, a1 := build(t, testSpec(t, "binary v1"))
	d2, a2 := build(t, testSpec(t, "binary v1"))
	if d1 != d2 {
		t.Fatalf("two builds of the same inputs: digests %s and %s", d1, d2)
	}
	b1, _ := os.ReadFile(a1)
	b2, _ := os.ReadFile(a2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("two builds of the same inputs wrote different archives")
	}
	written, err := os.ReadFile(a1 + ".digest")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(written)); got != d1.String() {
		t.Fatalf("%s.digest says %q, want %s", a1, got, d1)
	}
}

func TestTheDigestIsTheManifestDigestInTheIndex(t *testing.T) {
	d, archive := build(t, testSpec(t, "binary v1"))
	img, _ := readBack(t, archive)
	got, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got != d {
		t.Fatalf("index points at %s, builder printed %s", got, d)
	}
}

func TestAnyChangedInputChangesTheDigest(t *testing.T) {
	base, _ := build(t, testSpec(t, "binary v1"))
	cases := map[string]Spec{
		"one byte of a file":   testSpec(t, "binary v2"),
		"a file's mode":        testSpec(t, "binary v1", func(s *Spec) { s.Files[0].Mode = 0o755 }),
		"a file's destination": testSpec(t, "binary v1", func(s *Spec) { s.Files[0].Dest = "/app/tool" }),
		"a label":              testSpec(t, "binary v1", func(s *Spec) { s.Labels["org.opencontainers.image.revision"] = "abc" }),
		"the user":             testSpec(t, "binary v1", func(s *Spec) { s.User = "65535:65535" }),
		"the entrypoint":       testSpec(t, "binary v1", func(s *Spec) { s.Entrypoint = []string{"/app/bin/tool"} }),
		"SOURCE_DATE_EPOCH":    testSpec(t, "binary v1", func(s *Spec) { s.Created = testCreated.Add(time.Second) }),
		"no /tmp":              testSpec(t, "binary v1", func(s *Spec) { s.Tmp = false }),
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			if d, _ := build(t, spec); d == base {
				t.Fatalf("digest stayed %s", d)
			}
		})
	}
}

func TestTheConfigCarriesUserLabelsEntrypointAndTime(t *testing.T) {
	spec := testSpec(t, "binary v1", func(s *Spec) {
		s.Env = []string{"A=1"}
		s.WorkDir = "/app"
	})
	_, archive := build(t, spec)
	img, annotations := readBack(t, archive)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	if strings.Join(c.Entrypoint, " ") != "/app/bin/tool --serve" {
		t.Errorf("entrypoint %q", c.Entrypoint)
	}
	for k, v := range spec.Labels {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if len(c.Env) != 1 || c.Env[0] != "A=1" || c.WorkingDir != "/app" {
		t.Errorf("env %q, workdir %q", c.Env, c.WorkingDir)
	}
	if !cf.Created.Time.Equal(testCreated) || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("created %s on %s/%s, want %s on linux/amd64", cf.Created.Time, cf.OS, cf.Architecture, testCreated)
	}
	for _, h := range cf.History {
		if !h.Created.Time.Equal(testCreated) {
			t.Errorf("history entry created %s, want %s", h.Created.Time, testCreated)
		}
	}
	if annotations[annotationContainerdName] != testName || annotations[annotationRefName] != "1.2.3" {
		t.Errorf("index annotations %v: want the full name for containerd and the tag as ref.name", annotations)
	}
}

func TestTheLayerHoldsTheFileAtItsDestinationWithItsMode(t *testing.T) {
	_, archive := build(t, testSpec(t, "binary v1"))
	img, _ := readBack(t, archive)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	type seen struct {
		mode    int64
		content string
	}
	got := map[string]seen{}
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s owned by %d:%d (%q:%q), want 0:0 without names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(testCreated) {
			t.Errorf("%s has time %s, want %s", h.Name, h.ModTime, testCreated)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = seen{mode: h.Mode, content: string(b)}
		names = append(names, h.Name)
	}
	want := map[string]seen{
		"app/":         {mode: 0o755},
		"app/bin/":     {mode: 0o755},
		"app/bin/tool": {mode: 0o750, content: "binary v1"},
		"tmp/":         {mode: 0o1777},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: mode %o content %q, want mode %o content %q", name, got[name].mode, got[name].content, w.mode, w.content)
		}
	}
	if strings.Join(names, " ") != "app/ app/bin/ app/bin/tool tmp/" {
		t.Errorf("entries in order %q, want sorted with parents first", names)
	}
}

func TestTheDefaultModeFollowsTheExecuteBit(t *testing.T) {
	dir := t.TempDir()
	exe, data := filepath.Join(dir, "exe"), filepath.Join(dir, "data")
	if err := os.WriteFile(exe, nil, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(data, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	entries, err := layerEntries(Spec{Files: []File{{Src: exe, Dest: "/exe"}, {Src: data, Dest: "/etc/data"}}})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]int64{}
	for _, e := range entries {
		modes[e.name] = e.mode
	}
	if modes["exe"] != 0o755 || modes["etc/data"] != 0o644 || modes["etc/"] != 0o755 {
		t.Fatalf("modes exe %o, etc/data %o, etc/ %o; want 755, 644, 755", modes["exe"], modes["etc/data"], modes["etc/"])
	}
}

func TestBadInputsAreRejected(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string][]File{
		"relative destination":     {{Src: src, Dest: "app"}},
		"two files at one path":    {{Src: src, Dest: "/a"}, {Src: src, Dest: "/a"}},
		"a file used as directory": {{Src: src, Dest: "/a"}, {Src: src, Dest: "/a/b"}},
		"a directory as source":    {{Src: filepath.Dir(src), Dest: "/a"}},
		"a missing source":         {{Src: src + ".missing", Dest: "/a"}},
	} {
		if _, err := layerEntries(Spec{Files: files}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, ref := range []string{"sluice-manager:1", "localhost/sluice-manager", "localhost/Sluice:1"} {
		if _, err := ParseName(ref); err == nil {
			t.Errorf("image name %q accepted, want only fully qualified tagged names", ref)
		}
	}
	for _, f := range []string{"src", "src:/dest:999", "src:/dest:4755", ":/dest"} {
		if _, err := parseFile(f); err == nil {
			t.Errorf("--file %q accepted", f)
		}
	}
	if f, err := parseFile("src:/tmp2:1777"); err != nil || f.Mode != 0o777|fs.ModeSticky {
		t.Errorf("--file src:/tmp2:1777 gave %v, %v; want mode 1777", f, err)
	}
}
