// Command images builds one container image from a list of static files into
// an OCI image-layout tar archive, without a container engine:
//
//	images --name localhost/sluice-manager:0.1.0 --out manager.tar \
//	  --file bin/manager:/manager --entrypoint /manager \
//	  --label org.opencontainers.image.title=sluice-manager
//
// It prints the image's digest (the sha256 of its manifest) and writes it to
// OUT.digest. `ctr -n k8s.io images import OUT` loads the archive under NAME.
//
// Why go-containerregistry and not Debian's buildah: it is a Go library, so
// it comes through the module proxy pinned in go.mod like every other tool;
// it needs no daemon and no container storage to set up (buildah needs a
// storage driver, registries and policy configuration); it runs rootless; and
// its output is a pure function of its input, so the same files give the
// same digest. The layer tar and gzip are written here, with fixed times,
// owner 0:0 and sorted entries, to keep it that way.
//
// Flags:
//
//	--file SRC:DEST[:MODE]  a file of the image (repeatable); MODE is octal,
//	                        default 0755 if SRC is executable, else 0644
//	--name NAME             fully qualified REGISTRY/REPOSITORY:TAG
//	--entrypoint ARG        one argument of the entrypoint (repeatable)
//	--user UID:GID          default 65532:65532
//	--label KEY=VALUE       image label (repeatable)
//	--env KEY=VALUE         environment variable (repeatable)
//	--workdir DIR           working directory
//	--platform OS/ARCH      default linux/GOARCH of this program
//	--tmp                   add /tmp as an empty directory, mode 1777 (default true)
//	--out PATH.tar          the archive to write
//
// Times come from SOURCE_DATE_EPOCH (0 when unset).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("images", flag.ContinueOnError)
	var files, entrypoint, labels, env listFlag
	fl.Var(&files, "file", "SRC:DEST[:MODE], a file of the image (repeatable)")
	fl.Var(&entrypoint, "entrypoint", "one argument of the entrypoint (repeatable)")
	fl.Var(&labels, "label", "KEY=VALUE image label (repeatable)")
	fl.Var(&env, "env", "KEY=VALUE environment variable (repeatable)")
	ref := fl.String("name", "", "fully qualified image name, REGISTRY/REPOSITORY:TAG")
	user := fl.String("user", "65532:65532", "user the image runs as")
	workdir := fl.String("workdir", "", "working directory")
	platform := fl.String("platform", "linux/"+runtime.GOARCH, "OS/ARCH of the files")
	tmp := fl.Bool("tmp", true, "add /tmp as an empty directory with mode 1777")
	out := fl.String("out", "", "OCI image-layout tar archive to write")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if *out == "" || len(files) == 0 || len(entrypoint) == 0 {
		return errors.New("--out, --file and --entrypoint are required")
	}
	tag, err := ParseName(*ref)
	if err != nil {
		return err
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	spec := Spec{Entrypoint: entrypoint, User: *user, WorkDir: *workdir, Env: env, Created: created, Tmp: *tmp}
	if spec.Platform, err = parsePlatform(*platform); err != nil {
		return err
	}
	for _, f := range files {
		file, err := parseFile(f)
		if err != nil {
			return err
		}
		spec.Files = append(spec.Files, file)
	}
	if spec.Labels, err = parseLabels(labels); err != nil {
		return err
	}
	for _, e := range env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("--env %q: want KEY=VALUE", e)
		}
	}

	digest, err := BuildArchive(spec, tag, *out)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", tag.Name(), digest)
	return nil
}

// BuildArchive builds spec into the archive out (written beside it, then
// renamed) and out+".digest", and returns the manifest digest.
func BuildArchive(spec Spec, tag name.Tag, out string) (v1.Hash, error) {
	dir := filepath.Dir(out)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return v1.Hash{}, err
	}
	tmpDir, err := os.MkdirTemp(dir, ".images-*")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(tmpDir)

	img, err := Build(spec, tmpDir)
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	f, err := os.Create(filepath.Join(tmpDir, "image.tar"))
	if err != nil {
		return v1.Hash{}, err
	}
	if err := WriteLayout(f, img, tag, spec.Platform, spec.Created); err != nil {
		f.Close()
		return v1.Hash{}, err
	}
	if err := f.Close(); err != nil {
		return v1.Hash{}, err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return v1.Hash{}, err
	}
	return digest, os.WriteFile(out+".digest", []byte(digest.String()+"\n"), 0o644)
}

// sourceDateEpoch is the time of every file and of the image: the seconds
// in SOURCE_DATE_EPOCH, or the Unix epoch when it is unset.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	s, err := strconv.ParseInt(v, 10, 64)
	if err != nil || s < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
	}
	return time.Unix(s, 0).UTC(), nil
}

// parseFile reads SRC:DEST[:MODE].
func parseFile(v string) (File, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return File{}, fmt.Errorf("--file %q: want SRC:DEST[:MODE]", v)
	}
	f := File{Src: parts[0], Dest: parts[1]}
	if len(parts) == 3 {
		m, err := strconv.ParseUint(parts[2], 8, 32)
		if err != nil || m > 0o7777 || m == 0 {
			return File{}, fmt.Errorf("--file %q: mode %q is not an octal permission such as 0755", v, parts[2])
		}
		f.Mode = fs.FileMode(m & 0o777)
		if m&0o1000 != 0 {
			f.Mode |= fs.ModeSticky
		}
		if m&0o6000 != 0 {
			return File{}, fmt.Errorf("--file %q: setuid and setgid bits are not allowed", v)
		}
	}
	return f, nil
}

func parseLabels(labels []string) (map[string]string, error) {
	if len(labels) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", l)
		}
		m[k] = v
	}
	return m, nil
}

func parsePlatform(v string) (v1.Platform, error) {
	parts := strings.Split(v, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("--platform %q: want OS/ARCH[/VARIANT]", v)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}
