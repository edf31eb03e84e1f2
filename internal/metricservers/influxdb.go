package metricservers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// InfluxDB is an influxd (1.x) started for a test.
type InfluxDB struct {
	// URL is its HTTP API, e.g. http://127.0.0.1:40123.
	URL string
	// Username and Password are the admin's when started WithAuth.
	Username, Password string
}

// StartInfluxDB runs influxd with a database named db. With auth, HTTP
// auth is enabled and an admin user created (Username, Password).
func StartInfluxDB(t testing.TB, db string, auth bool) *InfluxDB {
	t.Helper()
	bin := binary(t, "influxd")
	dir := t.TempDir()
	httpAddr, rpcAddr := freeAddr(t), freeAddr(t)
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  bind-address = %q
  log-enabled = false
  auth-enabled = %t
[monitor]
  store-enabled = false
`, rpcAddr, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpAddr, auth)
	cfg := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "influxd", dir, nil, bin, "-config", cfg)
	s := &InfluxDB{URL: "http://" + httpAddr}
	p.waitHTTP(t, s.URL+"/ping", 204, 20*time.Second)
	if auth {
		// The first user may be created without credentials.
		if err := s.exec(fmt.Sprintf("CREATE USER %s WITH PASSWORD '%s' WITH ALL PRIVILEGES", "admin", "s3cret")); err != nil {
			t.Fatal(err)
		}
		s.Username, s.Password = "admin", "s3cret"
	}
	// influxd takes a moment to see its first user: until then it lets a
	// request in unauthenticated and refuses it "no user provided".
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.exec("CREATE DATABASE " + db)
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// exec runs a statement that changes the server.
func (s *InfluxDB) exec(q string) error {
	v := url.Values{"q": {q}}
	if s.Username != "" {
		v.Set("u", s.Username)
		v.Set("p", s.Password)
	}
	resp, err := http.Post(s.URL+"/query?"+v.Encode(), "application/x-www-form-urlencoded", nil)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	// /query answers 200 also when the statement failed: the error is in
	// the body's results.
	var body struct {
		Error   string `json:"error"`
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil && resp.StatusCode/100 == 2 {
		return fmt.Errorf("%s: reading the answer: %w", q, err)
	}
	if resp.StatusCode/100 != 2 || body.Error != "" {
		return fmt.Errorf("%s: %s %s", q, resp.Status, body.Error)
	}
	for _, r := range body.Results {
		if r.Error != "" {
			return fmt.Errorf("%s: %s", q, r.Error)
		}
	}
	return nil
}

// Write writes points in line protocol to db.
func (s *InfluxDB) Write(t testing.TB, db, lines string) {
	t.Helper()
	v := url.Values{"db": {db}}
	if s.Username != "" {
		v.Set("u", s.Username)
		v.Set("p", s.Password)
	}
	post(t, s.URL+"/write?"+v.Encode(), "text/plain", []byte(lines))
}
