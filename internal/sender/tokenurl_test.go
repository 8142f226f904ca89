package sender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/testenv"
)

// requestRecorder is a reverse proxy in front of a gateway that records
// the target and Authorization header of every request it passes on, as
// they came on the wire: what a proxy's access log would see.
type requestRecorder struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []recordedRequest
}

type recordedRequest struct{ uri, auth string }

func newRequestRecorder(t *testing.T, gatewayURL string) *requestRecorder {
	t.Helper()
	target, err := url.Parse(gatewayURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target) // passes WebSocket upgrades on
	r := &requestRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, recordedRequest{uri: req.RequestURI, auth: req.Header.Get("Authorization")})
		r.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *requestRecorder) url() string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") }

func (r *requestRecorder) requests() []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedRequest(nil), r.reqs...)
}

// TestTokenOnlyInHeaderThroughGateway: against a real gateway that requires
// a publish token (GATEWAY_AUTH=publish), the sender's frames reach a viewer
// in both protocols, so the gateway took the token from the Authorization
// header; and no request the sender made carried the token in its URL,
// where access logs keep it. Without a token the same sender is refused.
func TestTokenOnlyInHeaderThroughGateway(t *testing.T) {
	secret := []byte("tokenurl-test-secret-0123456789abcdef")
	signer, err := auth.NewHMACSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.Mint(auth.Grant{Room: "cam_*", Role: auth.RolePublish, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	g := testenv.StartGateway(t, "GATEWAY_AUTH=publish", "GATEWAY_JWT_SECRET="+string(secret))

	for _, protocol := range []string{ProtocolBinary, ProtocolSeed} {
		t.Run(protocol, func(t *testing.T) {
			room := "cam_" + protocol
			rec := newRequestRecorder(t, g.URL())
			view := testenv.Dial(t, g.WSURL()+"/ws/video/"+room+"/?role=view&format=binary", nil)
			cfg := testConfig(rec.url())
			cfg.Room, cfg.Protocol, cfg.Token = room, protocol, tok
			startSender(t, cfg)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range 3 {
				if _, err := view.ReadFrameContext(ctx); err != nil {
					t.Fatalf("frame %d from the sender: %v", i, err)
				}
			}
			reqs := rec.requests()
			if len(reqs) == 0 {
				t.Fatal("the recorder saw no request")
			}
			for i, req := range reqs {
				if strings.Contains(req.uri, tok) || strings.Contains(req.uri, "token") {
					t.Errorf("request %d: the URL %q carries the token", i, req.uri)
				}
				if req.auth != "Bearer "+tok {
					t.Errorf("request %d: Authorization %q, want the Bearer token", i, req.auth)
				}
			}
		})
	}

	t.Run("no token refused", func(t *testing.T) {
		rec := newRequestRecorder(t, g.URL())
		cfg := testConfig(rec.url())
		cfg.Room = "cam_none"
		s := startSender(t, cfg)
		testenv.WaitFor(t, 20*time.Second, "two refused dials", func() error {
			if n := len(rec.requests()); n < 2 {
				return fmt.Errorf("%d requests", n)
			}
			return nil
		})
		if st := s.Stats(); st.Connected || st.Sent > 0 {
			t.Fatalf("a sender without a token published: %+v", st)
		}
		if err := s.stop(t); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}
