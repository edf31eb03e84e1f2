package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustNew(t *testing.T, allow, deny, apiServer []string) *Policy {
	t.Helper()
	p, err := New(allow, deny, apiServer)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dial dials address through the policy, as a checked http.Transport does.
func dial(p *Policy, address string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.DialContext(&net.Dialer{Timeout: 2 * time.Second})(ctx, "tcp", address)
	if err == nil {
		_ = c.Close()
	}
	return err
}

// listen serves TCP on addr and counts the connections it accepts.
func listen(t *testing.T, addr string) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	return l.Addr().String(), &accepted
}

func TestTheDefaultPolicyRefusesEachDeniedClassBeforeConnecting(t *testing.T) {
	p := mustNew(t, nil, nil, []string{"10.96.0.1:443", "192.0.2.10:6443"})
	for _, tt := range []struct{ address, says string }{
		{"169.254.169.254:80", "egress to 169.254.169.254:80 refused: link-local addresses are denied"},
		{"[fe80::1]:80", "egress to [fe80::1]:80 refused: link-local addresses are denied"},
		// A zone must not hide the address from its prefix.
		{"[fe80::1%lo]:80", "link-local addresses are denied"},
		{"127.0.0.1:80", "egress to 127.0.0.1:80 refused: loopback addresses are denied"},
		{"127.8.9.10:80", "loopback addresses are denied"},
		{"[::1]:80", "egress to [::1]:80 refused: loopback addresses are denied"},
		// The IPv4-mapped form of loopback is loopback.
		{"[::ffff:127.0.0.1]:80", "loopback addresses are denied"},
		{"0.0.0.0:80", "egress to 0.0.0.0:80 refused: unspecified addresses are denied"},
		{"[::]:80", "egress to [::]:80 refused: unspecified addresses are denied"},
		{"[fd00:ec2::254]:80", "cloud metadata addresses are denied"},
		{"10.96.0.1:443", "egress to 10.96.0.1:443 refused: it is the Kubernetes API server"},
		{"192.0.2.10:6443", "it is the Kubernetes API server"},
	} {
		t.Run(tt.address, func(t *testing.T) {
			err := dial(p, tt.address)
			var refused *RefusedError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), tt.says) ||
				!strings.Contains(err.Error(), "(--webhook-egress-allow to permit)") {
				t.Errorf("dial %s: %v, want a refusal saying %q and naming the allow flag", tt.address, err, tt.says)
			}
		})
	}
}

func TestOnlyTheAPIServersExactAddressAndPortAreDenied(t *testing.T) {
	// In the e2e a Prometheus listens on the API server's node address,
	// on another port.
	p := mustNew(t, nil, nil, []string{"192.0.2.10:6443"})
	if err := p.Check("", netip.MustParseAddr("192.0.2.10"), 9090); err != nil {
		t.Errorf("another port of the API server's address: %v, want permitted", err)
	}
	if err := p.Check("", netip.MustParseAddr("192.0.2.10"), 6443); err == nil {
		t.Errorf("the API server's address:port permitted")
	}
}

func TestAddressesOutsideTheDeniedClassesArePermitted(t *testing.T) {
	p := mustNew(t, nil, nil, []string{"10.96.0.1:443"})
	for _, s := range []string{"93.184.216.34", "10.1.2.3", "192.168.1.20", "2001:db8::1", "169.255.0.1", "126.255.255.255"} {
		if err := p.Check("", netip.MustParseAddr(s), 443); err != nil {
			t.Errorf("%s: %v, want permitted", s, err)
		}
	}
	if err := p.Check("hooks.example.com", netip.MustParseAddr("203.0.113.7"), 443); err != nil {
		t.Errorf("a name resolving to a public address: %v, want permitted", err)
	}
}

func TestAnAllowedCIDRReopensPartOfADeniedClass(t *testing.T) {
	addr, accepted := listen(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)

	if err := dial(mustNew(t, nil, nil, nil), addr); err == nil {
		t.Fatalf("dial %s permitted by default", addr)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the refused dial reached the listener (%d connections)", n)
	}

	p := mustNew(t, []string{"127.0.0.1/32"}, nil, nil)
	if err := dial(p, addr); err != nil {
		t.Errorf("dial %s with 127.0.0.1/32 allowed: %v", addr, err)
	}
	if err := dial(p, "127.0.0.2:"+port); err == nil || !strings.Contains(err.Error(), "loopback addresses are denied") {
		t.Errorf("dial 127.0.0.2 with only 127.0.0.1/32 allowed: %v, want refused", err)
	}
	if err := dial(p, "169.254.169.254:80"); err == nil {
		t.Errorf("allowing loopback permitted link-local")
	}
}

func TestADenyEntryWinsOverEveryAllowEntry(t *testing.T) {
	addr, _ := listen(t, "127.0.0.1:0")
	ap := netip.MustParseAddrPort(addr)
	p := mustNew(t, []string{"127.0.0.0/8", "hooks.example.com"}, []string{addr, "10.0.0.0/8", "hooks.example.com:8443"}, nil)
	err := dial(p, addr)
	if err == nil || !strings.Contains(err.Error(), "refused: denied by --webhook-egress-deny entry "+addr) ||
		strings.Contains(err.Error(), "to permit") {
		t.Errorf("dial %s: %v, want refused by the deny entry, with no hint to allow it", addr, err)
	}
	if err := p.Check("", ap.Addr(), ap.Port()+1); err != nil {
		t.Errorf("another port of the allowed loopback: %v, want permitted", err)
	}
	if err := p.Check("", netip.MustParseAddr("10.20.30.40"), 80); err == nil {
		t.Errorf("an address in a denied CIDR permitted")
	}
	if err := p.Check("hooks.example.com", netip.Addr{}, 8443); err == nil {
		t.Errorf("a denied host:port permitted by name")
	}
	if err := p.Check("hooks.example.com", netip.MustParseAddr("203.0.113.7"), 443); err != nil {
		t.Errorf("the allowed name on another port: %v", err)
	}
}

func TestANameThatResolvesToLoopbackIsRefusedAtDialTime(t *testing.T) {
	// "localhost" passes every name check; what it resolves to does not.
	addr, accepted := listen(t, "127.0.0.1:0")
	_, port, _ := net.SplitHostPort(addr)
	err := dial(mustNew(t, nil, nil, nil), net.JoinHostPort("localhost", port))
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "egress to localhost:"+port+" (") ||
		!strings.Contains(err.Error(), "loopback addresses are denied") {
		t.Fatalf("dial localhost:%s: %v, want refused naming the name, what it resolved to and why", port, err)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the refused dial reached the listener (%d connections)", n)
	}
	// Allowing the name trusts what it resolves to.
	if err := dial(mustNew(t, []string{"localhost:" + port}, nil, nil), net.JoinHostPort("localhost", port)); err != nil {
		t.Errorf("dial localhost:%s with localhost:%s allowed: %v", port, port, err)
	}
}

func TestADeniedNameIsRefusedWithoutBeingResolved(t *testing.T) {
	// .invalid never resolves: refused by name, it fails with the
	// refusal, not a failed lookup.
	p := mustNew(t, nil, []string{"metadata.google.internal", "x.invalid"}, nil)
	for _, address := range []string{"metadata.google.internal:80", "X.Invalid.:443"} {
		err := dial(p, address)
		var refused *RefusedError
		if !errors.As(err, &refused) || refused.Addr.IsValid() {
			t.Errorf("dial %s: %v, want refused by name before resolving", address, err)
		}
	}
}

func TestThroughAProxyTheRequestsOwnAddressIsChecked(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { proxied.Add(1) }))
	t.Cleanup(proxy.Close)
	pu, _ := url.Parse(proxy.URL)
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = http.ProxyURL(pu)
	// The proxy runs on loopback: allow it, and nothing else.
	hc := &http.Client{Transport: mustNew(t, []string{pu.Host}, nil, nil).Transport(base)}

	_, err := hc.Get("http://169.254.169.254/latest/meta-data/")
	if err == nil || !strings.Contains(err.Error(), "egress to 169.254.169.254:80 refused: link-local addresses are denied") {
		t.Errorf("GET the metadata server through a proxy: %v, want refused", err)
	}
	if n := proxied.Load(); n != 0 {
		t.Errorf("the proxy got %d requests, want none", n)
	}
	resp, err := hc.Get("http://hooks.example.com/")
	if err != nil {
		t.Fatalf("GET an ordinary name through the proxy: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if n := proxied.Load(); n != 1 {
		t.Errorf("the proxy got %d requests, want 1", n)
	}
}

func TestEntriesAreParsedOrRejectedClearly(t *testing.T) {
	p := mustNew(t, []string{" 10.0.0.0/8 ", "", "192.0.2.1", "[2001:db8::1]:8443", "Prom.Example.com.", "hooks.local:9000", "::ffff:127.0.0.0/104", "[2001:db8::2]"}, nil, nil)
	for _, tt := range []struct {
		host string
		ip   string
		port uint16
	}{
		{"", "10.9.9.9", 1},
		{"", "192.0.2.1", 2},
		{"", "2001:db8::1", 8443},
		{"prom.example.com", "", 80},
		{"hooks.local", "", 9000},
		{"", "2001:db8::2", 3},
	} {
		var ip netip.Addr
		if tt.ip != "" {
			ip = netip.MustParseAddr(tt.ip)
		}
		if !matchesAny(p.allow, tt.host, ip, tt.port) {
			t.Errorf("%s %s:%d is not allowed by %v", tt.host, tt.ip, tt.port, p.allow)
		}
	}
	if err := p.Check("", netip.MustParseAddr("127.0.0.1"), 80); err != nil {
		t.Errorf("::ffff:127.0.0.0/104 did not allow 127.0.0.1: %v", err)
	}
	if matchesAny(p.allow, "", netip.MustParseAddr("2001:db8::1"), 8444) || matchesAny(p.allow, "hooks.local", netip.Addr{}, 9001) {
		t.Errorf("a port-bound entry matched another port")
	}

	for _, tt := range []struct{ entry, says string }{
		{"https://hooks.example.com/gate", "a URL"},
		{"10.0.0.0/33", "not a CIDR"},
		{"hooks_are fun", "want a CIDR, an IP address, IP:port, a host name or host:port"},
		{"hooks.example.com:http", "bad port"},
		{"10.0.0.1:0", "port 0"},
	} {
		_, err := New([]string{tt.entry}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), `--webhook-egress-allow entry "`+tt.entry+`"`) || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("entry %q: %v, want an error naming the flag, the entry and %q", tt.entry, err, tt.says)
		}
	}
	if _, err := New(nil, []string{"-bad-"}, nil); err == nil || !strings.Contains(err.Error(), "--webhook-egress-deny") {
		t.Errorf("a bad deny entry: %v, want an error naming --webhook-egress-deny", err)
	}
	if _, err := New(nil, nil, []string{"10.96.0.1"}); err == nil || !strings.Contains(err.Error(), "want host:port") {
		t.Errorf("an API server address without a port: %v", err)
	}
}

func matchesAny(rules []rule, host string, ip netip.Addr, port uint16) bool {
	for _, r := range rules {
		if r.matches(host, ip, port) {
			return true
		}
	}
	return false
}

func TestRefusalsSayWhatWasRefusedAndWhy(t *testing.T) {
	p := mustNew(t, nil, nil, nil)
	err := p.Check("", netip.MustParseAddr("169.254.169.254"), 80)
	want := "egress to 169.254.169.254:80 refused: link-local addresses are denied (cloud metadata servers answer there) (--webhook-egress-allow to permit)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	err = p.Check("Metadata.Internal.", netip.MustParseAddr("169.254.169.254"), 80)
	if err == nil || !strings.HasPrefix(err.Error(), "egress to metadata.internal:80 (169.254.169.254) refused: ") {
		t.Errorf("error = %v, want it to name the host, its address and the port", err)
	}
}
