package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the real node's certificates: one cluster CA that signs the API
// server's serving certificate and the admin client certificate, a
// front-proxy CA for the aggregation layer (metrics-server), and the
// service-account signing key. All of it lives in the run's directory and
// goes with it.
type pki struct {
	dir string
}

// Paths of the files pki.write creates.
func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

type issued struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (p pki) write(apiserverIPs []net.IP, apiserverNames []string) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	ca, err := p.selfSigned("ca", "sluice-e2e-ca")
	if err != nil {
		return err
	}
	if _, err := p.sign(ca, "apiserver", pkix.Name{CommonName: "kube-apiserver"}, apiserverIPs, apiserverNames, x509.ExtKeyUsageServerAuth); err != nil {
		return err
	}
	// The admin is system:masters: the harness, the kubelet, kube-proxy,
	// the control plane and Traefik use it (this is a throwaway test node).
	if _, err := p.sign(ca, "admin", pkix.Name{CommonName: "sluice-e2e-admin", Organization: []string{"system:masters"}}, nil, nil, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	fp, err := p.selfSigned("front-proxy-ca", "sluice-e2e-front-proxy-ca")
	if err != nil {
		return err
	}
	if _, err := p.sign(fp, "front-proxy-client", pkix.Name{CommonName: "front-proxy-client"}, nil, nil, x509.ExtKeyUsageClientAuth); err != nil {
		return err
	}
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(p.path("sa.key"), sa); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(p.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

func (p pki) selfSigned(name, cn string) (issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issued{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return issued{}, err
	}
	cert, _ := x509.ParseCertificate(der)
	return issued{cert, key}, p.save(name, der, key)
}

func (p pki) sign(ca issued, name string, subject pkix.Name, ips []net.IP, dns []string, usage x509.ExtKeyUsage) (issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issued{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return issued{}, err
	}
	cert, _ := x509.ParseCertificate(der)
	return issued{cert, key}, p.save(name, der, key)
}

func (p pki) save(name string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.WriteFile(p.path(name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return writeKey(p.path(name+".key"), key)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return n
}

// kubeconfig returns an admin kubeconfig for server.
func (p pki) kubeconfig(server string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: sluice-e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: sluice-e2e
  context: {cluster: sluice-e2e, user: admin}
current-context: sluice-e2e
`, server, p.path("ca.crt"), p.path("admin.crt"), p.path("admin.key"))
}
