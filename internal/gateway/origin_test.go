package gateway

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/framecast/framecast/internal/testenv"
)

// TestOriginCheck: a browser page on another host cannot open a WebSocket
// (403 before the upgrade, so it cannot watch or publish in a visitor's
// name); the page's own host, clients that send no Origin (cameras, the
// seed's Python sender) and hosts listed in GATEWAY_ALLOWED_ORIGINS can.
func TestOriginCheck(t *testing.T) {
	def := testenv.StartGateway(t)
	listed := testenv.StartGateway(t, "GATEWAY_ALLOWED_ORIGINS=cams.example.com,*.trusted.example")
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	for _, tc := range []struct {
		name   string
		g      *testenv.Gateway
		hdr    http.Header
		status int
	}{
		{"default: other host", def, origin("http://evil.example"), 403},
		{"default: same host, other port", def, origin(fmt.Sprintf("http://127.0.0.1:%d", def.Port+1)), 403},
		{"default: sandboxed page (null)", def, origin("null"), 403},
		{"default: same host", def, origin(fmt.Sprintf("http://127.0.0.1:%d", def.Port)), 101},
		{"default: no Origin", def, nil, 101},
		{"listed host", listed, origin("https://cams.example.com"), 101},
		{"listed wildcard", listed, origin("https://north.trusted.example"), 101},
		{"wildcard spans labels (path.Match)", listed, origin("https://a.b.trusted.example"), 101},
		{"wildcard needs the dot", listed, origin("https://eviltrusted.example"), 403},
		{"unlisted host", listed, origin("https://evil.example"), 403},
		{"lookalike host", listed, origin("https://cams.example.com.evil.example"), 403},
		{"listed: same host still allowed", listed, origin(fmt.Sprintf("http://127.0.0.1:%d", listed.Port)), 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, q := range []string{"role=view", "role=publish"} {
				_, status, body, _ := testenv.TryDial(t, secURL(tc.g, "demo", q), tc.hdr)
				if status != tc.status {
					t.Fatalf("%s: status %d %q, want %d", q, status, body, tc.status)
				}
			}
		})
	}
}

// TestOriginAllowed: which Origin and Host pairs pass the check (origin.go).
// A Host without a port (the seed's nginx `proxy_set_header Host $host`)
// admits the same host name on any port; a Host with a port is compared
// exactly; another host name needs a GATEWAY_ALLOWED_ORIGINS pattern.
func TestOriginAllowed(t *testing.T) {
	listed := []string{"cams.example.com", "*.trusted.example", "https://tls.example"}
	for _, tc := range []struct {
		name, origin, host string
		patterns           []string
		ok                 bool
	}{
		{"no Origin", "", "gw.example:8000", nil, true},
		{"same host:port", "http://gw.example:8000", "gw.example:8000", nil, true},
		{"same host:port, case", "http://GW.example:8000", "gw.EXAMPLE:8000", nil, true},
		{"same host, other port", "http://gw.example:8001", "gw.example:8000", nil, false},
		{"port in Host, none in Origin", "http://gw.example", "gw.example:8000", nil, false},
		{"seed: $host drops :81", "http://127.0.0.1:81", "127.0.0.1", nil, true},
		{"seed: by name", "http://cams.lan:81", "cams.lan", nil, true},
		{"no port in either", "https://gw.example", "gw.example", nil, true},
		{"no port in Host, case", "http://GW.Example:81", "gw.example", nil, true},
		{"no port in Host, other name", "http://evil.example:81", "gw.example", nil, false},
		{"no port in Host, lookalike", "http://gw.example.evil.example", "gw.example", nil, false},
		{"no port in Host, suffix", "http://evilgw.example", "gw.example", nil, false},
		{"127.0.0.2 is another host", "http://127.0.0.2:81", "127.0.0.1", nil, false},
		{"localhost is another host", "http://localhost:81", "127.0.0.1", nil, false},
		{"IPv6, no port in Host", "http://[::1]:81", "[::1]", nil, true},
		{"IPv6, other address", "http://[::2]:81", "[::1]", nil, false},
		{"IPv6, port in Host", "http://[::1]:81", "[::1]:8000", nil, false},
		{"null", "null", "gw.example", nil, false},
		{"null, no Host", "null", "", nil, false},
		{"empty Host", "http://gw.example", "", nil, false},
		{"unparsable", "http://%zz", "gw.example", nil, false},
		{"listed", "https://cams.example.com", "gw.example", listed, true},
		{"listed wildcard", "http://a.b.trusted.example:81", "gw.example", listed, false},
		{"listed wildcard, no port", "http://a.b.trusted.example", "gw.example", listed, true},
		{"listed scheme pattern", "https://tls.example", "gw.example", listed, true},
		{"listed scheme pattern, other scheme", "http://tls.example", "gw.example", listed, false},
		{"unlisted", "https://evil.example", "gw.example", listed, false},
		{"listed: same host still allowed", "http://127.0.0.1:81", "127.0.0.1", listed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := originAllowed(tc.origin, tc.host, tc.patterns)
			if (err == nil) != tc.ok {
				t.Fatalf("originAllowed(%q, %q, %q) = %v, want allowed %v", tc.origin, tc.host, tc.patterns, err, tc.ok)
			}
		})
	}
}
