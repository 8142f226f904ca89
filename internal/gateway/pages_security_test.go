package gateway

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/rooms"
	"github.com/framecast/framecast/web"
)

// TestPagesRefuseWeirdRooms: a room name that is not [A-Za-z0-9_]{1,64} is
// a 404 on the viewer page and the WebSocket route, and the answer does not
// echo it back.
func TestPagesRefuseWeirdRooms(t *testing.T) {
	g := testenv.StartGateway(t)
	for _, room := range []string{
		"%3Cscript%3Ealert(1)%3C%2Fscript%3E", // <script>alert(1)</script>
		"a%22onmouseover%3D%22alert(1)",       // a"onmouseover="alert(1)
		"caf%C3%A9",                           // café
		"a-b", "a.b", "%20", strings.Repeat("a", 65),
	} {
		for _, path := range []string{"/video/" + room + "/", "/ws/video/" + room + "/"} {
			resp, body := secGet(t, g.URL()+path, nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
			}
			if strings.Contains(body, "<") || strings.Contains(body, "alert") || strings.Contains(body, "caf") {
				t.Errorf("GET %s echoes the room: %q", path, body)
			}
		}
	}
}

// TestPagesRenderRoomsAndCSP: a room with underscores is listed on the index
// and has a viewer page, and every page carries a Content-Security-Policy
// that allows only the gateway's own scripts.
func TestPagesRenderRoomsAndCSP(t *testing.T) {
	g := testenv.StartGateway(t)
	pub := testenv.Dial(t, secURL(g, "back_yard_2", "role=publish"), nil)
	if err := pub.Write(t.Context(), websocket.MessageBinary, secJPEG(t, 1, 500)); err != nil { // a room from its first frame
		t.Fatal(err)
	}
	testenv.WaitFor(t, secWait, "the room on the index", func() error {
		_, body := secGet(t, g.URL()+"/", nil)
		if !strings.Contains(body, `<a href="/video/back_yard_2/">back_yard_2</a>`) {
			return fmt.Errorf("index lacks the room: %.300s", body)
		}
		return nil
	})
	for _, path := range []string{"/", "/video/", "/video/back_yard_2/", "/grid/", "/grid/?rooms=back_yard_2,a"} {
		resp, body := secGet(t, g.URL()+path, nil)
		csp := resp.Header.Get("Content-Security-Policy")
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("GET %s: CSP %q allows inline or eval", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
		secCheckNoInlineCode(t, path, body)
	}
	resp, body := secGet(t, g.URL()+"/grid/?rooms=ok,a-b", nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "rooms: item 2 is not a room name") {
		t.Errorf("GET /grid/?rooms=ok,a-b: %d %q, want 400 naming item 2", resp.StatusCode, body)
	}
	_, body = secGet(t, g.URL()+"/video/back_yard_2/", nil)
	if !strings.Contains(body, `data-room="back_yard_2"`) || !strings.Contains(body, "<title>back_yard_2 ·") {
		t.Fatalf("viewer page: %.400s", body)
	}
}

// TestTemplatesEscapeRoomNames renders the page templates with hostile room
// names, as if room-name validation were ever loosened: html/template
// escapes them in text, attributes and URLs.
func TestTemplatesEscapeRoomNames(t *testing.T) {
	p, err := newPages()
	if err != nil {
		t.Fatal(err)
	}
	evil := []string{`"><script>alert(1)</script>`, `x" onmouseover="alert(1)`, `javascript:alert(1)`}
	for _, name := range evil {
		var buf bytes.Buffer
		if err := p.viewer.Execute(&buf, struct {
			Room       string
			Recordings bool
		}{name, true}); err != nil {
			t.Fatal(err)
		}
		if err := p.index.Execute(&buf, struct{ Rooms []rooms.RoomSummary }{[]rooms.RoomSummary{{Name: name}}}); err != nil {
			t.Fatal(err)
		}
		if err := p.grid.Execute(&buf, struct {
			All        bool
			Rooms      string
			Recordings bool
		}{false, name, true}); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, bad := range []string{"<script>alert", `x" onmouseover`, `href="javascript:`} {
			if strings.Contains(out, bad) {
				t.Errorf("room %q rendered unescaped (%q) in:\n%s", name, bad, out)
			}
		}
		if strings.Count(out, "<script") != 7 { // wire.js, timeline.js and viewer.js; index.js; wire.js, timeline.js and grid.js: no more
			t.Errorf("room %q added a script tag:\n%s", name, out)
		}
	}
}

// TestTemplatesHaveNoInlineCode: every template, as written, loads scripts
// only by src and has no inline handlers or styles, so the CSP holds
// without 'unsafe-inline'. The viewer and grid scripts forward ?token= to
// their WebSocket (wire.js's socketURL), for GATEWAY_AUTH=all.
func TestTemplatesHaveNoInlineCode(t *testing.T) {
	n := 0
	err := fs.WalkDir(web.Templates, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(web.Templates, path)
		if err != nil {
			return err
		}
		n++
		secCheckNoInlineCode(t, path, string(b))
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walked %d templates: %v", n, err)
	}
	for file, wants := range map[string][]string{
		"static/wire.js":   {`.get("token")`, `"token=" + encodeURIComponent(token)`},
		"static/viewer.js": {`W.socketURL("/ws/video/`},
		"static/grid.js":   {`W.socketURL("/ws/multi/"`},
	} {
		js, err := fs.ReadFile(web.Static, file)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range wants {
			if !bytes.Contains(js, []byte(want)) {
				t.Errorf("%s no longer forwards the page's token (%q)", file, want)
			}
		}
	}
}

var (
	secScriptTag   = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)
	secHandlerAttr = regexp.MustCompile(`(?is)<[a-z][^>]*\son[a-z]+\s*=`)
	secStyleAttr   = regexp.MustCompile(`(?is)<[a-z][^>]*\sstyle\s*=|<style\b`)
	secJSURL       = regexp.MustCompile(`(?i)(href|src|action)\s*=\s*["']?\s*javascript:`)
)

// secCheckNoInlineCode fails if page has an inline script, an on...=
// handler, an inline style or a javascript: URL.
func secCheckNoInlineCode(t *testing.T, name, page string) {
	t.Helper()
	for _, m := range secScriptTag.FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("%s: inline script %q", name, m[0])
		}
	}
	if strings.Count(strings.ToLower(page), "<script") != len(secScriptTag.FindAllString(page, -1)) {
		t.Errorf("%s: unclosed or odd <script> tag", name)
	}
	for re, what := range map[*regexp.Regexp]string{secHandlerAttr: "event handler attribute", secStyleAttr: "inline style", secJSURL: "javascript: URL"} {
		if m := re.FindString(page); m != "" {
			t.Errorf("%s: %s: %q", name, what, m)
		}
	}
}

// TestGridRoomsParameter: /grid/?rooms= takes 1 to 64 valid room names,
// comma-separated (empty items and repeats ignored), and answers anything
// else with 400 and a message saying what is wrong, without echoing it.
func TestGridRoomsParameter(t *testing.T) {
	var many []string
	for i := range maxGridRooms + 1 {
		many = append(many, fmt.Sprintf("cam%d", i))
	}
	for _, tc := range []struct {
		query string
		rooms []string
		err   string
	}{
		{"", nil, ""},
		{"rooms=a", []string{"a"}, ""},
		{"rooms=b,a,,b,", []string{"b", "a"}, ""},
		{"rooms=a&rooms=c", []string{"a", "c"}, ""},
		{"rooms=", nil, "rooms names no room"},
		{"rooms=,", nil, "rooms names no room"},
		{"rooms=a,b-c", nil, "rooms: item 2 is not a room name"},
		{"rooms=%3Cscript%3E", nil, "rooms: item 1 is not a room name"},
		{"rooms=" + strings.Join(many[:maxGridRooms], ","), many[:maxGridRooms], ""},
		{"rooms=" + strings.Join(many, ","), nil, "rooms names 65 rooms; a grid shows at most 64"},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := gridRooms(q)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("?%s: %v, %v; want an error saying %q", tc.query, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.rooms) {
			t.Errorf("?%s: %q, %v; want %q", tc.query, got, err, tc.rooms)
		}
	}
}
