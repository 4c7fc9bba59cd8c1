package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the key material one cluster needs, as files for kube-apiserver's flags.
type pki struct {
	caFile                        string // CA certificate (ca.crt for clients)
	caPool                        *x509.CertPool
	serverCertFile, serverKeyFile string // serving certificate for 127.0.0.1, signed by the CA
	saKeyFile, saPublicFile       string // service-account token signing key and its public half
	// kube-apiserver's client certificate for the kubelet (exec, logs), in system:masters.
	kubeletClientCertFile, kubeletClientKeyFile string
}

// writePKI generates a CA, a serving certificate for loopback and serverIPs, a client
// certificate for the kubelet connections and a service-account signing key into dir. ECDSA
// P-256 throughout: generated in microseconds, and accepted by kube-apiserver for TLS and for
// service-account tokens (ES256).
func writePKI(dir string, serverIPs ...net.IP) (pki, error) {
	p := pki{
		caFile:                filepath.Join(dir, "ca.crt"),
		serverCertFile:        filepath.Join(dir, "apiserver.crt"),
		serverKeyFile:         filepath.Join(dir, "apiserver.key"),
		saKeyFile:             filepath.Join(dir, "sa.key"),
		saPublicFile:          filepath.Join(dir, "sa.pub"),
		kubeletClientCertFile: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		kubeletClientKeyFile:  filepath.Join(dir, "apiserver-kubelet-client.key"),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, fmt.Errorf("generate CA key: %w", err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "k8stest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return p, fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return p, err
	}
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)

	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, fmt.Errorf("generate serving key: %w", err)
	}
	serverTemplate := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, serverIPs...),
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		return p, fmt.Errorf("create serving certificate: %w", err)
	}

	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, fmt.Errorf("generate kubelet client key: %w", err)
	}
	clientTemplate := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTemplate, caCert, &clientKey.PublicKey, caKey)
	if err != nil {
		return p, fmt.Errorf("create kubelet client certificate: %w", err)
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return p, fmt.Errorf("generate service-account key: %w", err)
	}
	saPublic, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return p, err
	}

	serverKeyDER, err := x509.MarshalECPrivateKey(serverKey)
	if err != nil {
		return p, err
	}
	saKeyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return p, err
	}
	clientKeyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		return p, err
	}
	files := []struct {
		path, kind string
		der        []byte
	}{
		{p.caFile, "CERTIFICATE", caDER},
		{p.serverCertFile, "CERTIFICATE", serverDER},
		{p.serverKeyFile, "EC PRIVATE KEY", serverKeyDER},
		{p.saKeyFile, "EC PRIVATE KEY", saKeyDER},
		{p.saPublicFile, "PUBLIC KEY", saPublic},
		{p.kubeletClientCertFile, "CERTIFICATE", clientDER},
		{p.kubeletClientKeyFile, "EC PRIVATE KEY", clientKeyDER},
	}
	for _, f := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der})
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return p, err
		}
	}
	return p, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// randomToken returns 32 random hex digits.
func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
