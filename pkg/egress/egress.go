// Package egress decides where the manager may send a request whose
// destination a tenant chose: a Rollout's webhooks, a MetricTemplate's
// provider.address. Without it anyone allowed to write a Rollout could make
// the manager POST to the cloud's metadata server, to the Kubernetes API
// server or to the manager's own loopback (server-side request forgery).
//
// The check runs at dial time, on the address actually connected to: a name
// that resolves to another address on the next lookup (DNS rebinding), or a
// redirect, is checked again where it lands.
//
// Precedence, first match wins:
//
//  1. a deny entry (--webhook-egress-deny) refuses;
//  2. an allow entry (--webhook-egress-allow) permits;
//  3. a default denial refuses: link-local, loopback, unspecified and cloud
//     metadata addresses, and the API server's own address:port pairs;
//  4. anything else is permitted.
//
// So allow entries only re-open what the defaults deny (127.0.0.1/32 for a
// hook served next to the manager); they do not turn the policy into an
// allow list, and nothing re-opens what a deny entry refuses.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The manager flags whose entries make a Policy; refusals name them so that
// whoever reads the error knows what to change.
const (
	AllowFlag = "--webhook-egress-allow"
	DenyFlag  = "--webhook-egress-deny"
)

// rule is one entry: a prefix (a CIDR or a single address, any port), an
// exact address:port, or a host name with or without a port. Host names
// match the name dialled, before it is resolved.
type rule struct {
	text     string // as given, for messages
	prefix   netip.Prefix
	addrPort netip.AddrPort
	host     string
	port     uint16 // with host: 0 is any port
	// reason says why a default rule denies.
	reason string
}

// matches reports whether the rule covers a connection to ip:port dialled
// by host ("" when dialled by address). ip is invalid before resolution:
// then only host rules can match.
func (r rule) matches(host string, ip netip.Addr, port uint16) bool {
	switch {
	case r.host != "":
		return host == r.host && (r.port == 0 || r.port == port)
	case !ip.IsValid():
		return false
	case r.addrPort.IsValid():
		return r.addrPort.Addr() == ip && r.addrPort.Port() == port
	default:
		return r.prefix.Contains(ip)
	}
}

// defaults are the destinations denied unless an allow entry re-opens them.
var defaults = []rule{
	{prefix: netip.MustParsePrefix("169.254.0.0/16"), reason: "link-local addresses are denied (cloud metadata servers answer there)"},
	{prefix: netip.MustParsePrefix("fe80::/10"), reason: "link-local addresses are denied"},
	{prefix: netip.MustParsePrefix("127.0.0.0/8"), reason: "loopback addresses are denied"},
	{prefix: netip.MustParsePrefix("::1/128"), reason: "loopback addresses are denied"},
	// Connecting to 0.0.0.0 or :: reaches the manager's own host.
	{prefix: netip.MustParsePrefix("0.0.0.0/8"), reason: "unspecified addresses are denied"},
	{prefix: netip.MustParsePrefix("::/128"), reason: "unspecified addresses are denied"},
	// Metadata servers outside 169.254.0.0/16: AWS's over IPv6, Alibaba Cloud's.
	{prefix: netip.MustParsePrefix("fd00:ec2::254/128"), reason: "cloud metadata addresses are denied"},
	{prefix: netip.MustParsePrefix("100.100.100.200/32"), reason: "cloud metadata addresses are denied"},
}

// Policy decides which destinations may be connected to. The zero Policy
// has the default denials only.
type Policy struct {
	allow, deny []rule
	// apiServer are the API server's own address:port pairs (or host:port),
	// denied by default. Pairs, not whole addresses: another service may
	// listen on the same address (a Prometheus on the API server's node).
	apiServer []rule
	// allowFlag and denyFlag name the flags that set allow and deny, in
	// errors (the manager's unless WithFlags says otherwise).
	allowFlag, denyFlag string
}

// WithFlags names the flags that set the policy's allow and deny entries,
// for a binary other than the manager: refusals tell the reader which flag
// re-opens a destination. It returns p.
func (p *Policy) WithFlags(allow, deny string) *Policy {
	p.allowFlag, p.denyFlag = allow, deny
	return p
}

// New returns the policy of the allow and deny entries (each a CIDR, an
// address, address:port, a host name or host:port) that also denies, by
// default, the API server's own host:port pairs.
func New(allow, deny, apiServer []string) (*Policy, error) {
	p := &Policy{allowFlag: AllowFlag, denyFlag: DenyFlag}
	var err error
	if p.allow, err = parseAll(AllowFlag, allow); err != nil {
		return nil, err
	}
	if p.deny, err = parseAll(DenyFlag, deny); err != nil {
		return nil, err
	}
	for _, s := range apiServer {
		r, err := parse(s)
		if err == nil && r.addrPort == (netip.AddrPort{}) && (r.host == "" || r.port == 0) {
			err = errors.New("want host:port")
		}
		if err != nil {
			return nil, fmt.Errorf("API server address %q: %w", s, err)
		}
		r.reason = "it is the Kubernetes API server"
		p.apiServer = append(p.apiServer, r)
	}
	return p, nil
}

func parseAll(flag string, entries []string) ([]rule, error) {
	var out []rule
	for _, s := range entries {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		r, err := parse(s)
		if err != nil {
			return nil, fmt.Errorf("%s entry %q: %w", flag, s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// parse reads one entry.
func parse(s string) (rule, error) {
	r := rule{text: s}
	if strings.Contains(s, "://") {
		return r, errors.New("a URL: want a CIDR, an IP address, IP:port, a host name or host:port")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return r, fmt.Errorf("not a CIDR: %w", err)
		}
		r.prefix = p.Masked()
		if p.Addr().Is4In6() {
			r.prefix = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0)).Masked()
		}
		return r, nil
	}
	// An IPv6 address may come bracketed, as in a URL.
	if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		ip = normal(ip)
		r.prefix = netip.PrefixFrom(ip, ip.BitLen())
		return r, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return r, errors.New("port 0")
		}
		r.addrPort = netip.AddrPortFrom(normal(ap.Addr()), ap.Port())
		return r, nil
	}
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return r, fmt.Errorf("bad port %q", port)
		}
		host, r.port = h, uint16(n)
	}
	host = hostName(host)
	if !validName(host) {
		return r, errors.New("want a CIDR, an IP address, IP:port, a host name or host:port")
	}
	r.host = host
	return r, nil
}

// normal drops what would make one address compare unequal to itself: an
// IPv6 zone, the IPv4-in-IPv6 mapping.
func normal(ip netip.Addr) netip.Addr { return ip.WithZone("").Unmap() }

// hostName is the form names are compared in.
func hostName(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

func validName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// RefusedError is a connection the policy refused.
type RefusedError struct {
	// Host is the name dialled, "" when dialled by address.
	Host string
	// Addr is the address refused; invalid when a name was refused
	// before it was resolved.
	Addr netip.AddrPort
	// Port is the port dialled.
	Port uint16
	// Reason says which rule refused it.
	Reason string
	// Default is true when a default denial refused it (an allow entry
	// may re-open it).
	Default bool
	// AllowFlag is the flag whose entries re-open a default denial
	// (AllowFlag, the manager's, when empty).
	AllowFlag string
}

func (e *RefusedError) Error() string {
	var dest string
	switch {
	case e.Host != "" && e.Addr.IsValid():
		dest = fmt.Sprintf("%s (%s)", net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))), e.Addr.Addr())
	case e.Host != "":
		dest = net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port)))
	default:
		dest = e.Addr.String()
	}
	msg := fmt.Sprintf("egress to %s refused: %s", dest, e.Reason)
	if e.Default {
		flag := e.AllowFlag
		if flag == "" {
			flag = AllowFlag
		}
		msg += " (" + flag + " to permit)"
	}
	return msg
}

// Check returns nil when a connection to ip:port, dialled by the name host,
// is permitted, else a *RefusedError. host is "" when the address was
// dialled directly; ip may be invalid to check a name before resolving it.
func (p *Policy) Check(host string, ip netip.Addr, port uint16) error {
	if ip.IsValid() {
		ip = normal(ip)
	}
	host = hostName(host)
	refuse := func(reason string, byDefault bool) error {
		e := &RefusedError{Host: host, Port: port, Reason: reason, Default: byDefault, AllowFlag: p.allowFlag}
		if ip.IsValid() {
			e.Addr = netip.AddrPortFrom(ip, port)
		}
		return e
	}
	for _, r := range p.deny {
		if r.matches(host, ip, port) {
			return refuse("denied by "+p.denyFlag+" entry "+r.text, false)
		}
	}
	for _, r := range p.allow {
		if r.matches(host, ip, port) {
			return nil
		}
	}
	for _, set := range [][]rule{defaults, p.apiServer} {
		for _, r := range set {
			if r.matches(host, ip, port) {
				return refuse(r.reason, true)
			}
		}
	}
	return nil
}

// DialContext returns a dial function for http.Transport.DialContext. It
// dials with d (a zero Dialer when nil) and checks, in the dialer's Control
// hook, every address it is about to connect to: the resolved one, so a
// name cannot be made to resolve past the check. A name refused by name is
// not even resolved.
func (p *Policy) DialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		switch network {
		case "tcp", "tcp4", "tcp6":
		default:
			return nil, fmt.Errorf("egress over %s refused: only TCP is checked", network)
		}
		host, portText, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		port, err := strconv.ParseUint(portText, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("egress to %s: bad port %q", address, portText)
		}
		name := host
		if _, err := netip.ParseAddr(host); err == nil {
			name = ""
		}
		if err := p.Check(name, netip.Addr{}, uint16(port)); err != nil {
			return nil, err
		}
		checked := *d
		prev, prevCtx := d.Control, d.ControlContext
		checked.Control = nil
		checked.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("egress to %s refused: not an address:port", address)
			}
			if err := p.Check(name, ap.Addr(), ap.Port()); err != nil {
				return err
			}
			switch {
			case prevCtx != nil:
				return prevCtx(ctx, network, address, c)
			case prev != nil:
				return prev(network, address, c)
			}
			return nil
		}
		return checked.DialContext(ctx, network, address)
	}
}

// Transport returns a clone of base (of http.DefaultTransport when nil)
// whose every connection the policy checks. Its dialling is replaced.
// Through a proxy (HTTP_PROXY, HTTPS_PROXY) the connection goes to the
// proxy, which the dial check sees; the request's own host is then checked
// as written in its URL (a literal address, or a name against the name
// entries) before the proxy gets it, and what a name resolves to is the
// proxy's to check.
func (p *Policy) Transport(base *http.Transport) *http.Transport {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	// As http.DefaultTransport dials.
	tr.DialContext = p.DialContext(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	tr.DialTLSContext = nil
	tr.Dial = nil    //nolint:staticcheck // cleared so that DialContext is the only way out
	tr.DialTLS = nil //nolint:staticcheck // cleared so that DialContext is the only way out
	if proxy := tr.Proxy; proxy != nil {
		tr.Proxy = func(r *http.Request) (*url.URL, error) {
			u, err := proxy(r)
			if err != nil || u == nil {
				return u, err
			}
			if err := p.checkURL(r.URL); err != nil {
				return nil, err
			}
			return u, nil
		}
	}
	return tr
}

// checkURL checks the host of u as written: a literal address fully, a
// name against the name entries.
func (p *Policy) checkURL(u *url.URL) error {
	host := u.Hostname()
	port := uint16(80)
	if u.Scheme == "https" {
		port = 443
	}
	if s := u.Port(); s != "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return fmt.Errorf("egress to %s: bad port %q", u.Host, s)
		}
		port = uint16(n)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.Check("", ip, port)
	}
	return p.Check(host, netip.Addr{}, port)
}
