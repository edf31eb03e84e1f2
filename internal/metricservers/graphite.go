package metricservers

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Graphite is a carbon-cache and a graphite-web (Django's server) started
// for a test, sharing a whisper directory.
type Graphite struct {
	// URL is graphite-web's, e.g. http://127.0.0.1:40123 (GET /render).
	URL string
	// Carbon is carbon-cache's plaintext receiver, host:port.
	Carbon string

	carbon *process
}

// StartGraphite runs carbon-cache (one-second resolution for an hour) and
// graphite-web reading its whisper files and its cache.
func StartGraphite(t testing.TB) *Graphite {
	t.Helper()
	carbonBin, webBin := binary(t, "carbon-cache"), binary(t, "graphite-manage")
	dir := t.TempDir()
	whisper := filepath.Join(dir, "whisper") + "/"
	for _, d := range []string{whisper, filepath.Join(dir, "conf"), filepath.Join(dir, "web", "log"), filepath.Join(dir, "py")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	line, pickle, query, web := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	hostPort := func(a string) (string, string) { h, p, _ := net.SplitHostPort(a); return h, p }
	lh, lp := hostPort(line)
	ph, pp := hostPort(pickle)
	qh, qp := hostPort(query)
	write(t, filepath.Join(dir, "conf", "carbon.conf"), fmt.Sprintf(`[cache]
STORAGE_DIR = %[1]s/
LOCAL_DATA_DIR = %[2]s
WHITELISTS_DIR = %[1]s/lists/
CONF_DIR = %[1]s/conf/
LOG_DIR = %[1]s/log/
PID_DIR = %[1]s/
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 10000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = %[3]s
LINE_RECEIVER_PORT = %[4]s
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = %[5]s
PICKLE_RECEIVER_PORT = %[6]s
CACHE_QUERY_INTERFACE = %[7]s
CACHE_QUERY_PORT = %[8]s
LOG_LISTENER_CONNECTIONS = False
CARBON_METRIC_INTERVAL = 0
`, dir, whisper, lh, lp, ph, pp, qh, qp))
	write(t, filepath.Join(dir, "conf", "storage-schemas.conf"), "[default]\npattern = .*\nretentions = 1s:1h\n")
	carbon := start(t, "carbon-cache", dir, nil, carbonBin,
		"--config="+filepath.Join(dir, "conf", "carbon.conf"), "--debug", "--nodaemon", "start")
	// carbon-cache binds its query, line and pickle ports in turn and exits
	// when one is taken: wait for all three, not only the one Send uses.
	for _, a := range []string{query, line, pickle} {
		carbon.waitTCP(t, a, 20*time.Second)
	}

	// graphite-web reads its settings from the module GRAPHITE_SETTINGS_MODULE
	// names, here one in the temporary directory.
	webDir := filepath.Join(dir, "web")
	write(t, filepath.Join(dir, "py", "sluice_graphite_settings.py"), fmt.Sprintf(`SECRET_KEY = 'sluice-test'
GRAPHITE_ROOT = '/usr/share/graphite-web'
STATIC_ROOT = '/usr/share/graphite-web/static'
CONF_DIR = %[1]q
STORAGE_DIR = %[1]q
LOG_DIR = %[2]q
INDEX_FILE = %[3]q
WHISPER_DIR = %[4]q
CARBONLINK_HOSTS = [%[5]q]
DEFAULT_XFILES_FACTOR = 0
LOG_ROTATION = False
DATABASES = {'default': {'NAME': %[6]q, 'ENGINE': 'django.db.backends.sqlite3'}}
FUNCTION_PLUGINS = []
`, webDir, filepath.Join(webDir, "log"), filepath.Join(webDir, "index"), whisper, query, filepath.Join(webDir, "graphite.db")))
	env := []string{"PYTHONPATH=" + filepath.Join(dir, "py"), "GRAPHITE_SETTINGS_MODULE=sluice_graphite_settings", "PYTHONDONTWRITEBYTECODE=1"}
	w := start(t, "graphite-web", webDir, env, webBin, "runserver", "--noreload", web)
	g := &Graphite{URL: "http://" + web, Carbon: line, carbon: carbon}
	w.waitHTTP(t, g.URL+"/render?target=none&format=json", 200, 60*time.Second)
	return g
}

// Send sends points in carbon's plaintext protocol ("path value timestamp"
// lines); carbon-cache writes them to whisper within a second or two.
func (g *Graphite) Send(t testing.TB, lines ...string) {
	t.Helper()
	c, err := net.Dial("tcp", g.Carbon)
	if err != nil {
		t.Fatalf("sending to carbon-cache: %v; its output:\n%s", err, g.carbon.logs.String())
	}
	if _, err := c.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
