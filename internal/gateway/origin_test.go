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
				_, status, body, _ := secDial(t, secURL(tc.g, "demo", q), tc.hdr)
				if status != tc.status {
					t.Fatalf("%s: status %d %q, want %d", q, status, body, tc.status)
				}
			}
		})
	}
}
