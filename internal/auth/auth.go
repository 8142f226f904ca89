// Package auth issues and checks framecast access tokens.
//
// A token is a JWT that names a room (or a pattern of rooms), a role and an
// expiry, for example {"room": "cam_*", "role": "publish", "exp": 1767225600}.
// Its claims:
//
//   - room is an exact room name ("demo") or a path.Match pattern: "*" (every
//     room), "cam_*" (every room whose name starts with cam_), "cam_?"...
//     Room names hold no "/", so "*" matches every room.
//   - role is "view" (watch), "publish" (publish, and watch the rooms it may
//     publish to: a camera is the source of what it would see, and the seed's
//     sender both publishes and receives on one connection), or "*" (both;
//     today the same as "publish", and the role to give tools that need
//     everything).
//   - exp is required. A Verifier accepts a token until exp plus Leeway.
//
// Tokens are signed with HS256 and a shared secret of at least MinSecretBytes,
// or with RS256 or ES256 and a key pair (the gateway holds only the public
// key). A Verifier accepts exactly the one algorithm its key is for, so a
// token signed with another algorithm (including "none", and HS256 made with
// a public key as its secret) is refused.
package auth

import (
	"crypto/elliptic"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles a token can carry.
const (
	RoleView    = "view"    // may watch
	RolePublish = "publish" // may publish, and watch the same rooms
	RoleAll     = "*"       // may publish and watch
)

// Permission is a set of things a connection wants to do in a room.
type Permission uint8

// Permissions.
const (
	Publish Permission = 1 << iota
	View
)

// String returns "publish", "view", "publish+view" or "none".
func (p Permission) String() string {
	switch p {
	case Publish:
		return "publish"
	case View:
		return "view"
	case Publish | View:
		return "publish+view"
	}
	return "none"
}

// Leeway is how long after its exp a token is still accepted, for clock
// skew between the host that minted it and the gateway. A connection
// admitted with a token is closed when the token expires, leeway included.
const Leeway = 5 * time.Second

// MinSecretBytes is the shortest HMAC secret accepted: HS256 keys shorter
// than its 32-byte output weaken it, and short secrets can be guessed
// offline from any one token.
const MinSecretBytes = 32

// DemoSecret is the HS256 secret docker-compose.yml falls back to when
// FRAMECAST_JWT_SECRET is unset, so that `docker compose up` starts with
// publish protection on and no manual step. It is public (it is in the
// repository), so tokens signed with it protect nothing: the gateway logs a
// warning at start when GATEWAY_JWT_SECRET equals it. Production sets its own
// secret (openssl rand -hex 32); see docs/security.md.
const DemoSecret = "framecast-demo-secret-CHANGE-ME-0123456789abcdef"

// maxRoomPattern bounds the room claim, which path.Match walks on every
// connection.
const maxRoomPattern = 128

// Errors returned by Verify and Claims.Allows. Callers match them with
// errors.Is; the returned errors wrap them with detail.
var (
	ErrNoToken      = errors.New("auth: missing token")
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrWrongRoom    = errors.New("auth: token does not grant this room")
	ErrWrongRole    = errors.New("auth: token does not grant this role")
	ErrWeakSecret   = errors.New("auth: secret too short")
)

// Claims are a framecast token's claims.
type Claims struct {
	// Room is the room name or path.Match pattern the token grants.
	Room string `json:"room"`
	// Role is RoleView, RolePublish or RoleAll.
	Role string `json:"role"`
	jwt.RegisteredClaims
}

var _ jwt.ClaimsValidator = (*Claims)(nil)

// Validate checks the framecast claims; jwt's parser calls it after the
// signature and the registered claims have been checked.
func (c *Claims) Validate() error {
	if c.Room == "" {
		return errors.New("no room claim")
	}
	if len(c.Room) > maxRoomPattern {
		return fmt.Errorf("room claim longer than %d bytes", maxRoomPattern)
	}
	if _, err := path.Match(c.Room, ""); err != nil {
		return fmt.Errorf("room claim %q is not a valid pattern", c.Room)
	}
	if c.Grants() == 0 {
		return fmt.Errorf("role claim %q is not %q, %q or %q", c.Role, RoleView, RolePublish, RoleAll)
	}
	return nil
}

// Grants returns what the token's role permits.
func (c *Claims) Grants() Permission {
	switch c.Role {
	case RoleView:
		return View
	case RolePublish, RoleAll:
		return Publish | View
	}
	return 0
}

// Allows returns nil when the token grants every permission in need on
// room, ErrWrongRoom or ErrWrongRole otherwise.
func (c *Claims) Allows(room string, need Permission) error {
	if ok, err := path.Match(c.Room, room); err != nil || !ok {
		return fmt.Errorf("%w: token is for %q", ErrWrongRoom, c.Room)
	}
	if c.Grants()&need != need {
		return fmt.Errorf("%w: role %q cannot %s", ErrWrongRole, c.Role, need)
	}
	return nil
}

// Deadline returns when a connection admitted with these claims must close:
// exp plus Leeway.
func (c *Claims) Deadline() time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Add(Leeway)
}

// Verifier checks tokens signed with one key and one algorithm. It is safe
// for concurrent use.
type Verifier struct {
	method string
	key    any
	parser *jwt.Parser
}

// NewHMACVerifier returns a verifier of HS256 tokens signed with secret.
func NewHMACVerifier(secret []byte) (*Verifier, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	return newVerifier(jwt.SigningMethodHS256.Alg(), secret), nil
}

// NewPublicKeyVerifier returns a verifier of tokens signed with the private
// key of pemData, a PEM public key (PKIX "PUBLIC KEY", PKCS#1
// "RSA PUBLIC KEY") or certificate: RS256 for an RSA key of at least 2048
// bits, ES256 for a P-256 ECDSA key.
func NewPublicKeyVerifier(pemData []byte) (*Verifier, error) {
	if k, err := jwt.ParseRSAPublicKeyFromPEM(pemData); err == nil {
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("auth: RSA key of %d bits; need at least 2048", k.N.BitLen())
		}
		return newVerifier(jwt.SigningMethodRS256.Alg(), k), nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(pemData); err == nil {
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("auth: ECDSA key on %s; only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return newVerifier(jwt.SigningMethodES256.Alg(), k), nil
	}
	return nil, errors.New("auth: no RSA or ECDSA public key found in PEM data")
}

func newVerifier(method string, key any) *Verifier {
	return &Verifier{
		method: method,
		key:    key,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{method}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(Leeway),
		),
	}
}

// Method returns the one algorithm the verifier accepts: HS256, RS256 or
// ES256.
func (v *Verifier) Method() string { return v.method }

// Verify checks token's signature, algorithm, expiry and claims, and
// returns its claims. Every failure wraps ErrInvalidToken (ErrNoToken for an
// empty token).
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil })
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidToken, describe(err))
	}
	return &c, nil
}

// describe turns a jwt error into a short reason fit for a 401 body.
func describe(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp claim"
	case errors.Is(err, jwt.ErrTokenUnverifiable),
		// jwt reports an algorithm outside WithValidMethods as a bad
		// signature, telling them apart only in the message.
		errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return "wrong signing algorithm"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		// The wrapped message names the claim; keep it short.
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		if len(msg) > 80 {
			msg = msg[:80]
		}
		return "invalid claims: " + msg
	}
	return "invalid token"
}

func checkSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("%w: %d bytes, need at least %d (e.g. openssl rand -hex 32)", ErrWeakSecret, len(secret), MinSecretBytes)
	}
	return nil
}

// Grant is what a minted token allows.
type Grant struct {
	Room    string        // room name or pattern
	Role    string        // RoleView, RolePublish or RoleAll
	TTL     time.Duration // lifetime from the time of minting; must be positive
	Subject string        // optional sub claim, e.g. the camera's name
}

// Signer mints tokens. It is safe for concurrent use.
type Signer struct {
	method jwt.SigningMethod
	key    any
}

// NewHMACSigner returns a signer of HS256 tokens.
func NewHMACSigner(secret []byte) (*Signer, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	return &Signer{method: jwt.SigningMethodHS256, key: secret}, nil
}

// NewPrivateKeySigner returns a signer for the PEM private key pemData:
// RS256 for an RSA key, ES256 for a P-256 ECDSA key.
func NewPrivateKeySigner(pemData []byte) (*Signer, error) {
	if k, err := jwt.ParseRSAPrivateKeyFromPEM(pemData); err == nil {
		return &Signer{method: jwt.SigningMethodRS256, key: k}, nil
	}
	if k, err := jwt.ParseECPrivateKeyFromPEM(pemData); err == nil {
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("auth: ECDSA key on %s; only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return &Signer{method: jwt.SigningMethodES256, key: k}, nil
	}
	return nil, errors.New("auth: no RSA or ECDSA private key found in PEM data")
}

// LoadSigner returns the signer an operator's settings ask for: the PEM
// private key in keyFile if set, else the secret in secretFile if set (one
// trailing newline or space trimmed), else secret (GATEWAY_JWT_SECRET).
func LoadSigner(secret, secretFile, keyFile string) (*Signer, error) {
	switch {
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read private key: %w", err)
		}
		return NewPrivateKeySigner(b)
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read secret: %w", err)
		}
		return NewHMACSigner([]byte(strings.TrimRight(string(b), "\r\n\t ")))
	case secret != "":
		return NewHMACSigner([]byte(secret))
	}
	return nil, errors.New("auth: no key: set GATEWAY_JWT_SECRET, or pass -secret-file or -key-file")
}

// Method returns the signing algorithm: HS256, RS256 or ES256.
func (s *Signer) Method() string { return s.method.Alg() }

// Mint returns a signed token for g, issued at now.
func (s *Signer) Mint(g Grant, now time.Time) (string, error) {
	if g.TTL <= 0 {
		return "", fmt.Errorf("auth: ttl %v must be positive", g.TTL)
	}
	c := Claims{
		Room: g.Room,
		Role: g.Role,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   g.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(g.TTL)),
		},
	}
	if err := c.Validate(); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	tok, err := jwt.NewWithClaims(s.method, c).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("failed to sign token: %w", err)
	}
	return tok, nil
}

// Secret is a setting that must not be printed or logged: its String,
// GoString and LogValue say "[redacted]" (or "" when empty).
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the secret.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// LogValue keeps slog from printing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
