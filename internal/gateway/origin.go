package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// The Origin check of WebSocket handshakes (docs/security.md, "Origin
// check"). It stops a page of another site from opening a WebSocket to the
// gateway in a visitor's browser. Non-browser clients (cameras, the seed's
// Python sender) send no Origin and are not checked: the check is no
// authentication, only a browser rule.
//
// The gateway compares the Origin with the request's Host header, the name
// the browser connected to, passed on by a proxy that keeps it (nginx
// `$http_host`, or the seed's `$host`, which drops the port):
//
//   - Host with a port: the Origin's host:port must equal it (a page on
//     another port of the same host is refused).
//   - Host without a port: the Origin's host name must equal it, on any
//     port. The port is unknown (the scheme's default, or a proxy dropped
//     it), and ports separate no sites in a browser: cookies and same-site
//     rules ignore them.
//
// X-Forwarded-Host is ignored: it is not what the browser connected to (the
// seed's nginx sets it to $server_name), and proxies pass a client's own
// through. Names the Host does not carry go in GATEWAY_ALLOWED_ORIGINS.

// checkOrigin answers 403 and returns false if r's Origin may not open a
// WebSocket on this gateway. It is safe for concurrent use.
func (s *Server) checkOrigin(w http.ResponseWriter, r *http.Request) bool {
	err := originAllowed(r.Header.Get("Origin"), r.Host, s.cfg.AllowedOrigins)
	if err == nil {
		return true
	}
	s.metrics.rejected.WithLabelValues("origin").Inc()
	s.log.Debug("websocket refused", "err", err, "remote", r.RemoteAddr)
	http.Error(w, err.Error(), http.StatusForbidden)
	return false
}

// originAllowed returns nil if a WebSocket handshake whose Origin header is
// origin, sent with Host header host, may proceed: no Origin, the same host
// (see the comment at the top of this file), or a match of one of patterns
// (GATEWAY_ALLOWED_ORIGINS: path.Match patterns on the Origin's host[:port],
// or on scheme://host[:port] when the pattern has "://", case-insensitive,
// as coder/websocket's OriginPatterns). Patterns were validated at start.
func originAllowed(origin, host string, patterns []string) error {
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("failed to parse Origin %q: %w", origin, err)
	}
	if u.Host != "" && sameHost(u, host) {
		return nil
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return nil
		}
	}
	if u.Host == "" {
		return fmt.Errorf("origin %q has no host", origin)
	}
	return fmt.Errorf("origin %q is not allowed for host %q (GATEWAY_ALLOWED_ORIGINS lists other names)", origin, host)
}

// sameHost reports whether the Origin u names host, the Host header: its
// host:port exactly when host has a port, else its host name on any port.
func sameHost(u *url.URL, host string) bool {
	if strings.EqualFold(u.Host, host) {
		return true
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return false // host names a port, and it is not the Origin's
	}
	name := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]") // IPv6 literal
	return name != "" && strings.EqualFold(u.Hostname(), name)
}
