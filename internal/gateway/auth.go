package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/framecast/framecast/internal/auth"
)

// Access control modes, from GATEWAY_AUTH. An empty mode is AuthOff, so a
// Config built in code without it behaves like the seed.
const (
	AuthOff     = "off"     // anyone may publish and watch
	AuthPublish = "publish" // publishing needs a token; watching is open
	AuthAll     = "all"     // publishing and watching need a token
)

// accessControl decides who may open a connection to a room. It is
// immutable after newAccessControl, so safe for concurrent use.
type accessControl struct {
	mode     string
	verifier *auth.Verifier // nil when mode is AuthOff
}

func newAccessControl(cfg *Config) (*accessControl, error) {
	a := &accessControl{mode: cfg.Auth}
	if a.mode == "" {
		a.mode = AuthOff
	}
	if a.mode == AuthOff {
		return a, nil
	}
	var err error
	if cfg.JWTPublicKeyFile != "" {
		var pem []byte
		if pem, err = os.ReadFile(cfg.JWTPublicKeyFile); err == nil {
			a.verifier, err = auth.NewPublicKeyVerifier(pem)
		}
	} else {
		a.verifier, err = auth.NewHMACVerifier([]byte(cfg.JWTSecret))
	}
	if err != nil {
		return nil, fmt.Errorf("failed to set up token verification: %w", err)
	}
	return a, nil
}

// required reports whether a connection that wants need must show a token.
func (a *accessControl) required(need auth.Permission) bool {
	switch a.mode {
	case AuthAll:
		return true
	case AuthPublish:
		return need&auth.Publish != 0
	}
	return false
}

// rolePermission is what a WebSocket connection of role needs to be
// admitted. The seed's connection (no role) may publish and receives; it is
// admitted as a viewer, so the seed's page (which has no token) works where
// viewing is open, and seedPublishClaims decides whether it may publish.
func rolePermission(role string) auth.Permission {
	if role == rolePublish {
		return auth.Publish
	}
	return auth.View
}

// seedPublishClaims reports whether a no-role connection may publish to
// room: publishing needs no token in this mode, or the request carries a
// valid token that allows publishing there (its claims are returned, for
// expiry). It never refuses the connection: one that may not publish still
// watches, and is closed with 1008 if it sends a frame.
func (s *Server) seedPublishClaims(r *http.Request, room string) (*auth.Claims, bool) {
	if !s.access.required(auth.Publish) {
		return nil, true
	}
	claims, err := s.access.verifier.Verify(requestToken(r))
	if err != nil || claims.Allows(room, auth.Publish) != nil {
		return nil, false
	}
	return claims, true
}

// requestToken returns the token of r: the Authorization: Bearer header, or
// the token query parameter (browsers cannot set headers on a WebSocket).
func requestToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return r.URL.Query().Get("token")
}

// authorize admits a request that wants need on room, before any upgrade.
// When the mode asks for a token it checks it and answers 401 (no token,
// bad signature, expired, malformed) or 403 (valid, but not for this room
// or role) with a short plain-text reason, and returns ok == false. It
// returns the token's claims when a token was required and valid, nil when
// none was required (a token nobody asked for is ignored).
//
// Handlers of other routes that serve a room's frames (snapshots, MJPEG)
// call it with auth.View.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, room string, need auth.Permission) (claims *auth.Claims, ok bool) {
	if !s.access.required(need) {
		return nil, true
	}
	claims, ok = s.verifyToken(w, r, room)
	if !ok {
		return nil, false
	}
	if err := claims.Allows(room, need); err != nil {
		s.metrics.rejected.WithLabelValues("forbidden").Inc()
		s.log.Debug("refused: token not for this room or role", "room", room, "remote", r.RemoteAddr, "err", err)
		http.Error(w, strings.TrimPrefix(err.Error(), "auth: "), http.StatusForbidden)
		return nil, false
	}
	return claims, true
}

// verifyToken checks r's token and answers 401 (no token, bad signature,
// expired, malformed) with a short plain-text reason if it is not valid.
// room names the request in the debug log.
func (s *Server) verifyToken(w http.ResponseWriter, r *http.Request, room string) (*auth.Claims, bool) {
	token := requestToken(r)
	claims, err := s.access.verifier.Verify(token)
	if err != nil {
		s.metrics.rejected.WithLabelValues("unauthorized").Inc()
		s.log.Debug("refused: bad token", "room", room, "remote", r.RemoteAddr, "err", err)
		challenge := `Bearer realm="framecast"`
		if token != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		http.Error(w, strings.TrimPrefix(err.Error(), "auth: "), http.StatusUnauthorized)
		return nil, false
	}
	return claims, true
}

// closeOnExpiry calls expire when the token a connection was admitted with
// expires (exp plus auth.Leeway), and returns a func that cancels that. A
// nil claims (no token required) does nothing.
func (s *Server) closeOnExpiry(claims *auth.Claims, expire func()) (stop func()) {
	if claims == nil {
		return func() {}
	}
	t := time.AfterFunc(time.Until(claims.Deadline()), func() {
		s.metrics.rejected.WithLabelValues("token_expired").Inc()
		expire()
	})
	return func() { t.Stop() }
}

// validateAuth checks the access-control settings; Validate calls it.
func (c *Config) validateAuth() error {
	switch c.Auth {
	case "", AuthOff, AuthPublish, AuthAll:
	default:
		return settingError("AUTH", "%q is not %q, %q or %q", c.Auth, AuthOff, AuthPublish, AuthAll)
	}
	if c.JWTSecret != "" && c.JWTPublicKeyFile != "" {
		return settingError("JWT_PUBLIC_KEY_FILE", "set it or %s_JWT_SECRET, not both", EnvPrefix)
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < auth.MinSecretBytes {
		return settingError("JWT_SECRET", "%d bytes is too short; use at least %d random bytes (openssl rand -hex 32)",
			len(c.JWTSecret), auth.MinSecretBytes)
	}
	if c.JWTPublicKeyFile != "" {
		pem, err := os.ReadFile(c.JWTPublicKeyFile)
		if err != nil {
			return settingError("JWT_PUBLIC_KEY_FILE", "%v", err)
		}
		if _, err := auth.NewPublicKeyVerifier(pem); err != nil {
			return settingError("JWT_PUBLIC_KEY_FILE", "%v", err)
		}
	}
	if c.Auth != "" && c.Auth != AuthOff && c.JWTSecret == "" && c.JWTPublicKeyFile == "" {
		return settingError("AUTH", "%q needs %s_JWT_SECRET or %s_JWT_PUBLIC_KEY_FILE", c.Auth, EnvPrefix, EnvPrefix)
	}
	return nil
}

// settingError names a bad setting the way Validate does.
func settingError(name, format string, args ...any) error {
	return fmt.Errorf("invalid %s_%s: %s", EnvPrefix, name, fmt.Sprintf(format, args...))
}

// logSecurityPosture warns at start about settings that leave the gateway
// open.
func (s *Server) logSecurityPosture() {
	switch s.access.mode {
	case AuthOff:
		s.log.Warn("GATEWAY_AUTH=off: anyone who can reach this gateway may publish to and watch any room; " +
			"set GATEWAY_AUTH=publish (or all) and GATEWAY_JWT_SECRET in production, see docs/security.md")
	default:
		s.log.Info("access control on", "auth", s.access.mode, "alg", s.access.verifier.Method())
	}
	if string(s.cfg.JWTSecret) == auth.DemoSecret {
		s.log.Warn("GATEWAY_JWT_SECRET is docker-compose.yml's public demo secret: anyone can mint tokens for this gateway; " +
			"set FRAMECAST_JWT_SECRET (openssl rand -hex 32) in a .env file beside docker-compose.yml, see docs/security.md")
	}
}

// withoutURL drops the URL from a url.Parse error: GATEWAY_REDIS_URL may
// hold a password, and configuration errors go to the log.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
