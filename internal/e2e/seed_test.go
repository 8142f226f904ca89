package e2e_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// seedPageRoom is the room the seed's page watches: video.html hard-codes "wms".
const seedPageRoom = "wms"

// TestSeedDeployment runs the seed's own deployment with framecast in place
// of daphne (issue 11, section 4): the seed's nginx server block (its
// `location /ws` exactly as the blog post prints it: `proxy_set_header Host
// $host`, which drops the port) on a port other than 80, in front of the
// second of two gateway replicas that share a real redis-server, and the
// seed's video.html in headless Chromium. A sender publishes the seed's
// text data URLs to the first replica, so the frames reach the page
// through Redis. No framecast setting is changed: the replicas get only the
// Redis URL. The page must show frames; the same page served from another
// host, opening its WebSocket to the seed's server as a cross-site page
// would, must be refused.
func TestSeedDeployment(t *testing.T) {
	for _, tool := range []string{"redis-server", "nginx", "chromium"} {
		testenv.RequireTool(t, tool) // skip before building anything
	}
	testenv.Binary(t, "sender")
	redis := testenv.StartRedis(t)
	replicas := []*testenv.Gateway{
		testenv.StartGateway(t, "GATEWAY_REDIS_URL="+redis.URL()),
		testenv.StartGateway(t, "GATEWAY_REDIS_URL="+redis.URL()),
	}
	for _, g := range replicas {
		g.WaitReady(t, 10*time.Second)
	}
	page := startSeedPage(t)
	proxy := startSeedNginx(t, page, replicas[1])
	testenv.Start(t, "sender", testenv.Binary(t, "sender"), []string{
		"SENDER_URL=" + replicas[0].WSURL(), // straight to replica 1
		"SENDER_ROOM=" + seedPageRoom,
		"SENDER_SOURCE=test",
		"SENDER_FPS=" + strconv.Itoa(senderFPS),
		"SENDER_WIDTH=" + strconv.Itoa(senderWidth),
		"SENDER_PROTOCOL=seed", // what send_video.py sends
	})
	testenv.WaitFor(t, 10*time.Second, "the sender to connect to replica 1", func() error {
		return wantTotal(replicas[:1], "seed", 1)
	})
	b := startBrowser(t)

	if !t.Run("seed_page", func(t *testing.T) {
		b.Navigate(t, proxy.URL()+"/video/"+seedPageRoom+"/")
		first := waitForSeedImg(t, b, "the page's <img> to show a frame", func(s seedImg) error {
			if !strings.HasPrefix(s.Src, "data:image/jpeg;base64,") || s.Width != senderWidth {
				return fmt.Errorf("no frame shown yet")
			}
			return nil
		})
		waitForSeedImg(t, b, "the page's <img> to show a newer frame", func(s seedImg) error {
			if s.Hash == first.Hash || s.Width != senderWidth {
				return fmt.Errorf("src unchanged since the first frame")
			}
			return nil
		})
		if err := wantTotal(replicas[1:], "seed", 1); err != nil {
			t.Fatalf("the page's WebSocket is not on replica 2: %v", err)
		}
		b.RequireCleanConsole(t)
	}) {
		return
	}

	t.Run("cross_site_page_refused", func(t *testing.T) {
		refusedBefore := rejectedTotal(t, replicas[1])
		// The seed's page as another site would copy it: served from
		// 127.0.0.2, its WebSocket aimed at the seed's server.
		other := serveCrossSitePage(t, page, proxy.Addr())
		b.Navigate(t, other+"/video/"+seedPageRoom+"/")
		s := waitForSeedImg(t, b, "the cross-site page's WebSocket to be closed", func(s seedImg) error {
			if s.ReadyState != 3 { // CLOSED
				return fmt.Errorf("WebSocket readyState %d", s.ReadyState)
			}
			return nil
		})
		if s.Src != "" {
			t.Fatalf("the cross-site page shows %.40q, want nothing", s.Src)
		}
		testenv.WaitFor(t, 5*time.Second, "the browser to log the refused handshake", func() error {
			for _, m := range b.ConsoleErrors() {
				if strings.Contains(m.String(), "403") {
					return nil
				}
			}
			return fmt.Errorf("console errors: %v", b.ConsoleErrors())
		})
		if got := rejectedTotal(t, replicas[1]); got != refusedBefore+1 {
			t.Fatalf("replica 2 refused %v requests, want %v", got, refusedBefore+1)
		}
	})
}

// startSeedPage writes the seed's video.html (testdata/seed/video.html) to
// a folder as /video/wms/index.html, where the seed's Django view serves
// it, with an empty favicon.ico, and returns the folder.
func startSeedPage(t *testing.T) string {
	t.Helper()
	html, err := os.ReadFile(filepath.Join("testdata", "seed", "video.html"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "video", seedPageRoom)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), html, 0o644); err != nil {
		t.Fatal(err)
	}
	// Chromium asks for one; a 404 would be a console error.
	if err := os.WriteFile(filepath.Join(root, "favicon.ico"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

var seedNginxConf = template.Must(template.ParseFiles(filepath.Join("testdata", "seed", "nginx.conf.tmpl")))

// startSeedNginx runs the seed's nginx config (testdata/seed/nginx.conf.tmpl)
// on a free port, serving the page folder root and proxying /ws to the
// given gateways.
func startSeedNginx(t *testing.T, root string, gateways ...*testenv.Gateway) *nginx {
	t.Helper()
	n := &nginx{Port: testenv.FreePort(t), Dir: t.TempDir()}
	data := struct {
		Dir, Root string
		Port      int
		Upstreams []string
	}{Dir: n.Dir, Root: root, Port: n.Port}
	for _, g := range gateways {
		data.Upstreams = append(data.Upstreams, "127.0.0.1:"+strconv.Itoa(g.Port))
	}
	n.run(t, seedNginxConf, data, "/video/"+seedPageRoom+"/")
	return n
}

// serveCrossSitePage serves the seed's page from another host, 127.0.0.2,
// with its WebSocket aimed at target (host:port) instead of its own host,
// and returns the page server's base URL.
func serveCrossSitePage(t *testing.T, root, target string) string {
	t.Helper()
	html, err := os.ReadFile(filepath.Join(root, "video", seedPageRoom, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	aimed := strings.Replace(string(html), "window.location.host", strconv.Quote(target), 1)
	if aimed == string(html) {
		t.Fatal("the seed's page no longer uses window.location.host")
	}
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("failed to listen on another loopback address: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(aimed))
	}))
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// seedImg is what the seed's page shows: its <img>'s src (a prefix, its
// length and a hash), the decoded image's width, and its WebSocket's
// readyState.
type seedImg struct {
	Src        string `json:"src"`
	Len        int    `json:"len"`
	Hash       uint32 `json:"hash"`
	Width      int    `json:"width"`
	ReadyState int    `json:"readyState"`
}

const seedImgJS = `(() => {
	const img = document.getElementById("resImg");
	const s = img.getAttribute("src") || "";
	let h = 0x811c9dc5;
	for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
	return {src: s.slice(0, 40), len: s.length, hash: h >>> 0, width: img.naturalWidth,
		readyState: typeof ws === "undefined" ? -1 : ws.readyState};
})()`

// waitForSeedImg polls the seed's page until cond accepts its state, and
// returns that state.
func waitForSeedImg(t *testing.T, b *browser, what string, cond func(seedImg) error) seedImg {
	t.Helper()
	var got seedImg
	testenv.WaitFor(t, recoveryBound, what, func() error {
		s, err := evaluate[seedImg](b, seedImgJS)
		if err != nil {
			return fmt.Errorf("failed to read the page: %w", err)
		}
		if err := cond(s); err != nil {
			return fmt.Errorf("%w; page: %+v", err, s)
		}
		got = s
		return nil
	})
	return got
}

// rejectedTotal returns how many requests g refused for their Origin.
func rejectedTotal(t *testing.T, g *testenv.Gateway) float64 {
	t.Helper()
	return testenv.Metric(t, g.URL(), `framecast_rejected_total{reason="origin"}`)
}
