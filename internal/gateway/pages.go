package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
	"github.com/framecast/framecast/web"
)

// contentSecurityPolicy allows the page's own scripts, styles, images and
// WebSocket/HTTP connections, and nothing else: no inline script, no CDN.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type pages struct {
	index  *template.Template
	viewer *template.Template
	grid   *template.Template
	files  fs.FS
}

func newPages() (*pages, error) {
	index, err := template.ParseFS(web.Templates, "templates/index.html")
	if err != nil {
		return nil, fmt.Errorf("failed to parse index template: %w", err)
	}
	viewer, err := template.ParseFS(web.Templates, "templates/viewer.html")
	if err != nil {
		return nil, fmt.Errorf("failed to parse viewer template: %w", err)
	}
	grid, err := template.ParseFS(web.Templates, "templates/grid.html")
	if err != nil {
		return nil, fmt.Errorf("failed to parse grid template: %w", err)
	}
	files, err := fs.Sub(web.Static, "static")
	if err != nil {
		return nil, err
	}
	return &pages{index: index, viewer: viewer, grid: grid, files: files}, nil
}

func (p *pages) static() http.Handler {
	fsrv := http.StripPrefix("/static/", http.FileServerFS(p.files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		fsrv.ServeHTTP(w, r)
	})
}

// render executes t into a buffer first, so a template error becomes a 500
// rather than half a page.
func render(w http.ResponseWriter, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "failed to render page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	render(w, s.pages.index, struct{ Rooms []rooms.RoomSummary }{s.roomList(r.Context())})
}

func (s *Server) handleViewerPage(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !frames.ValidRoom(room) {
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	render(w, s.pages.viewer, struct {
		Room       string
		Recordings bool
	}{room, s.lib != nil})
}

func (s *Server) handleRooms(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Rooms []rooms.RoomSummary `json:"rooms"`
	}{s.roomList(r.Context())})
}

// maxGridRooms is the most rooms /grid/?rooms= may name: what one
// multi-room connection carries by default (GATEWAY_MAX_ROOMS_PER_CONN).
const maxGridRooms = 64

// gridRooms reads the rooms query parameter of /grid/ (parseRooms): nil
// when it is absent (every live room), else the rooms named. No name at
// all or more than maxGridRooms rooms is an error worth a 400.
func gridRooms(q url.Values) ([]string, error) {
	if !q.Has("rooms") {
		return nil, nil
	}
	out, err := parseRooms(q, maxGridRooms, "a grid shows")
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("rooms names no room; leave it out to see every live room")
	}
	return out, err
}

// handleGridPage serves /grid/: a wall of camera tiles, every live room
// (the page follows /api/rooms) or the rooms of ?rooms=a,b,c, all over one
// multi-room WebSocket (web/static/grid.js).
func (s *Server) handleGridPage(w http.ResponseWriter, r *http.Request) {
	list, err := gridRooms(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	render(w, s.pages.grid, struct {
		All        bool
		Rooms      string
		Recordings bool
	}{list == nil, strings.Join(list, ","), s.lib != nil})
}
