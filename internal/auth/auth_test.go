package auth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/framecast/framecast/internal/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes

func mint(t *testing.T, s *auth.Signer, g auth.Grant, now time.Time) string {
	t.Helper()
	tok, err := s.Mint(g, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signRaw signs arbitrary claims with any method, for tokens Mint refuses
// to make.
func signRaw(t *testing.T, m jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyHMAC(t *testing.T) {
	signer, err := auth.NewHMACSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewHMACVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewHMACSigner([]byte(strings.Repeat("z", 32)))
	now := time.Now()
	valid := auth.Grant{Room: "demo", Role: auth.RolePublish, TTL: time.Hour}
	exp := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }

	for _, tc := range []struct {
		name  string
		token string
		want  string // "" = valid; else a substring of the error
	}{
		{"valid", mint(t, signer, valid, now), ""},
		{"within leeway", signRaw(t, jwt.SigningMethodHS256, secret, &auth.Claims{Room: "demo", Role: "view",
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp(-auth.Leeway / 2)}}), ""},
		{"expired", mint(t, signer, valid, now.Add(-2*time.Hour)), "token expired"},
		{"other secret", mint(t, other, valid, now), "bad signature"},
		{"malformed", "not.a.token", "malformed"},
		{"garbage", "abc", "malformed"},
		{"no exp", signRaw(t, jwt.SigningMethodHS256, secret, &auth.Claims{Room: "demo", Role: "view"}), "no exp"},
		{"not yet valid", signRaw(t, jwt.SigningMethodHS256, secret, &auth.Claims{Room: "demo", Role: "view",
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp(time.Hour), NotBefore: exp(time.Minute)}}), "not valid yet"},
		{"HS384 refused", signRaw(t, jwt.SigningMethodHS384, secret, &auth.Claims{Room: "demo", Role: "view",
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp(time.Hour)}}), "wrong signing algorithm"},
		{"alg none refused", signRaw(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, &auth.Claims{Room: "demo", Role: "view",
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp(time.Hour)}}), "wrong signing algorithm"},
		{"no room", signRaw(t, jwt.SigningMethodHS256, secret, &auth.Claims{Role: "view",
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp(time.Hour)}}), "no room claim"},
		{"bad role", signRaw(t, jwt.SigningMethodHS256, secret, &auth.Claims{Room: "demo", Role: "admin",
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp(time.Hour)}}), "role claim"},
		{"bad pattern", signRaw(t, jwt.SigningMethodHS256, secret, &auth.Claims{Room: "cam_[", Role: "view",
			RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: exp(time.Hour)}}), "not a valid pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Room != "demo" {
					t.Fatalf("room = %q", c.Room)
				}
				return
			}
			if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want ErrInvalidToken with %q", err, tc.want)
			}
		})
	}
	if _, err := v.Verify(""); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("Verify(\"\") = %v, want ErrNoToken", err)
	}
}

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		room, role, want string
		need             auth.Permission
		err              error
	}{
		{"demo", auth.RolePublish, "demo", auth.Publish, nil},
		{"demo", auth.RolePublish, "demo", auth.View, nil}, // a publisher may watch its room
		{"demo", auth.RolePublish, "demo", auth.Publish | auth.View, nil},
		{"demo", auth.RoleView, "demo", auth.View, nil},
		{"demo", auth.RoleView, "demo", auth.Publish, auth.ErrWrongRole},
		{"demo", auth.RoleView, "demo", auth.Publish | auth.View, auth.ErrWrongRole}, // the seed's connection
		{"demo", auth.RoleAll, "demo", auth.Publish | auth.View, nil},
		{"demo", auth.RolePublish, "demo2", auth.Publish, auth.ErrWrongRoom},
		{"demo", auth.RolePublish, "Demo", auth.Publish, auth.ErrWrongRoom},
		{"*", auth.RolePublish, "anything_1", auth.Publish, nil},
		{"cam_*", auth.RolePublish, "cam_1", auth.Publish, nil},
		{"cam_*", auth.RolePublish, "cam_", auth.Publish, nil},
		{"cam_*", auth.RolePublish, "dog_1", auth.Publish, auth.ErrWrongRoom},
		{"cam_*", auth.RolePublish, "xcam_1", auth.Publish, auth.ErrWrongRoom},
		{"cam_?", auth.RoleView, "cam_12", auth.View, auth.ErrWrongRoom},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s/%s", tc.room, tc.role, tc.want, tc.need), func(t *testing.T) {
			c := &auth.Claims{Room: tc.room, Role: tc.role}
			err := c.Allows(tc.want, tc.need)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("Allows = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestWeakSecretRefused(t *testing.T) {
	short := secret[:31]
	if _, err := auth.NewHMACVerifier(short); !errors.Is(err, auth.ErrWeakSecret) {
		t.Fatalf("NewHMACVerifier(31 bytes) = %v", err)
	}
	if _, err := auth.NewHMACSigner(short); !errors.Is(err, auth.ErrWeakSecret) {
		t.Fatalf("NewHMACSigner(31 bytes) = %v", err)
	}
}

func TestMintRefusesBadGrants(t *testing.T) {
	s, _ := auth.NewHMACSigner(secret)
	for _, g := range []auth.Grant{
		{Room: "", Role: auth.RoleView, TTL: time.Hour},
		{Room: "demo", Role: "admin", TTL: time.Hour},
		{Room: "demo", Role: auth.RoleView, TTL: 0},
		{Room: "cam_[", Role: auth.RoleView, TTL: time.Hour},
	} {
		if tok, err := s.Mint(g, time.Now()); err == nil {
			t.Errorf("Mint(%+v) = %q, want an error", g, tok)
		}
	}
}

// TestPublicKeys: RS256 and ES256 tokens verify with the public key; the
// classic algorithm confusion (HS256 signed with the public key's PEM as the
// HMAC secret) is refused, as are small RSA keys.
func TestPublicKeys(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		priv any
		pub  any
		alg  string
	}{
		{"RS256", rsaKey, &rsaKey.PublicKey, "RS256"},
		{"ES256", ecKey, &ecKey.PublicKey, "ES256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			privPEM, pubPEM := pemPair(t, tc.priv, tc.pub)
			signer, err := auth.NewPrivateKeySigner(privPEM)
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewPublicKeyVerifier(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			if signer.Method() != tc.alg || v.Method() != tc.alg {
				t.Fatalf("methods %s/%s, want %s", signer.Method(), v.Method(), tc.alg)
			}
			tok := mint(t, signer, auth.Grant{Room: "cam_*", Role: auth.RolePublish, TTL: time.Hour}, time.Now())
			c, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Allows("cam_3", auth.Publish); err != nil {
				t.Fatal(err)
			}
			confused := signRaw(t, jwt.SigningMethodHS256, pubPEM, &auth.Claims{Room: "cam_3", Role: "publish",
				RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
			if _, err := v.Verify(confused); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("HS256 token signed with the public key accepted: %v", err)
			}
			hmacOnly, _ := auth.NewHMACSigner(secret)
			if _, err := v.Verify(mint(t, hmacOnly, auth.Grant{Room: "x", Role: "view", TTL: time.Hour}, time.Now())); err == nil {
				t.Fatal("HS256 token accepted by a public-key verifier")
			}
		})
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, pubPEM := pemPair(t, small, &small.PublicKey)
	if _, err := auth.NewPublicKeyVerifier(pubPEM); err == nil {
		t.Fatal("1024-bit RSA key accepted")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, pubPEM = pemPair(t, p384, &p384.PublicKey)
	if _, err := auth.NewPublicKeyVerifier(pubPEM); err == nil {
		t.Fatal("P-384 key accepted for ES256")
	}
	if _, err := auth.NewPublicKeyVerifier([]byte("not pem")); err == nil {
		t.Fatal("garbage accepted as a public key")
	}
}

func pemPair(t *testing.T, priv, pub any) (privPEM, pubPEM []byte) {
	t.Helper()
	pk, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pb})
}

func TestLoadSigner(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, append(append([]byte{}, secret...), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewHMACVerifier(secret)
	for name, load := range map[string]func() (*auth.Signer, error){
		"env":  func() (*auth.Signer, error) { return auth.LoadSigner(string(secret), "", "") },
		"file": func() (*auth.Signer, error) { return auth.LoadSigner("", file, "") }, // trailing newline trimmed
	} {
		s, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := v.Verify(mint(t, s, auth.Grant{Room: "a", Role: "view", TTL: time.Minute}, time.Now())); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := auth.LoadSigner("", "", ""); err == nil {
		t.Fatal("LoadSigner with no key succeeded")
	}
}

func TestSecretIsNotPrinted(t *testing.T) {
	s := auth.Secret("hunter2hunter2hunter2hunter2hunter2")
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %#v", s, s, s), fmt.Sprintf("%+v", struct{ S auth.Secret }{s})} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %s", out)
		}
	}
}

// Example mints a publish token for every room starting with cam_ and
// checks it the way the gateway does.
func Example() {
	secret := []byte("an example secret of 32+ bytes..")
	signer, _ := auth.NewHMACSigner(secret)
	verifier, _ := auth.NewHMACVerifier(secret)

	token, _ := signer.Mint(auth.Grant{Room: "cam_*", Role: auth.RolePublish, TTL: 24 * time.Hour}, time.Now())
	claims, err := verifier.Verify(token)
	fmt.Println(err)
	fmt.Println(claims.Allows("cam_front", auth.Publish))
	fmt.Println(claims.Allows("lobby", auth.Publish))
	// Output:
	// <nil>
	// <nil>
	// auth: token does not grant this room: token is for "cam_*"
}
