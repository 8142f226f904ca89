package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// secRedisACL are redis-server arguments for an ACL user "framecast" with
// everything, and a default user that may only PING (so testenv can see
// the server is up) and cannot publish or subscribe.
var secRedisACL = []string{
	"--user", "framecast", "on", ">secretpass", "~*", "&*", "+@all",
	"--user", "default", "on", "nopass", "-@all", "+ping",
}

// secReadyzSays waits until g's /readyz answers status with a body
// containing want.
func secReadyzSays(t *testing.T, g *testenv.Gateway, status int, want string) {
	t.Helper()
	testenv.WaitFor(t, secWait, fmt.Sprintf("/readyz %d %q", status, want), func() error {
		resp, body := secGet(t, g.URL()+"/readyz", nil)
		if resp.StatusCode != status || !strings.Contains(body, want) {
			return fmt.Errorf("/readyz = %d %q", resp.StatusCode, body)
		}
		return nil
	})
}

// secRelays checks that a frame published on a reaches a viewer on b.
func secRelays(t *testing.T, a, b *testenv.Gateway) {
	t.Helper()
	viewer := testenv.Dial(t, secURL(b, "acl", "role=view&format=binary"), nil)
	secStartPublisher(t, testenv.Dial(t, secURL(a, "acl", "role=publish"), nil), 20*time.Millisecond)
	secWaitFrameAfter(t, viewer, 0)
}

// TestRedisACL: GATEWAY_REDIS_URL carries an ACL user and password
// (redis://user:password@host:port/db). Two replicas with the right
// password are ready and relay frames through Redis; one with a wrong
// password is not ready, and says why.
func TestRedisACL(t *testing.T) {
	r := testenv.StartRedis(t, secRedisACL...)
	url := fmt.Sprintf("redis://framecast:secretpass@127.0.0.1:%d/0", r.Port)
	a := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+url)
	b := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+url)
	a.WaitReady(t, secWait)
	b.WaitReady(t, secWait)
	secRelays(t, a, b)

	wrong := testenv.StartGateway(t, fmt.Sprintf("GATEWAY_REDIS_URL=redis://framecast:wrongpass@127.0.0.1:%d/0", r.Port))
	secReadyzSays(t, wrong, http.StatusServiceUnavailable, "WRONGPASS")
	if strings.Contains(wrong.Proc.Output(), "wrongpass") {
		t.Fatal("the gateway logged the Redis password")
	}
}

// TestRedisTLS: with a rediss:// URL the gateway talks TLS to Redis and
// verifies its certificate. redis-server serves TLS with a certificate from
// a CA made here; replicas that trust the CA (SSL_CERT_FILE) are ready and
// relay frames, one that does not is not ready.
func TestRedisTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := secTestCA(t, dir)
	tlsPort := testenv.FreePort(t)
	args := append([]string{
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile,
		"--tls-auth-clients", "no",
	}, secRedisACL...)
	testenv.StartRedis(t, args...) // testenv PINGs the plain port; the gateways use only the TLS one
	url := fmt.Sprintf("GATEWAY_REDIS_URL=rediss://framecast:secretpass@127.0.0.1:%d/0", tlsPort)

	a := testenv.StartGateway(t, url, "SSL_CERT_FILE="+caFile)
	b := testenv.StartGateway(t, url, "SSL_CERT_FILE="+caFile)
	a.WaitReady(t, secWait)
	b.WaitReady(t, secWait)
	secRelays(t, a, b)

	untrusting := testenv.StartGateway(t, url, "SSL_CERT_FILE="+filepath.Join(dir, "empty.pem"))
	secReadyzSays(t, untrusting, http.StatusServiceUnavailable, "certificate")
}

// secTestCA writes a CA and a server certificate for 127.0.0.1 signed by
// it, and returns the files: CA certificate, server certificate, server
// key.
func secTestCA(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "framecast test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "redis"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.pem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("redis.pem", "CERTIFICATE", leafDER), write("redis.key", "PRIVATE KEY", keyDER)
}
