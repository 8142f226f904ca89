package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"

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
	files, err := fs.Sub(web.Static, "static")
	if err != nil {
		return nil, err
	}
	return &pages{index: index, viewer: viewer, files: files}, nil
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
	if !rooms.ValidName(room) {
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	render(w, s.pages.viewer, struct{ Room string }{room})
}

func (s *Server) handleRooms(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Rooms []rooms.RoomSummary `json:"rooms"`
	}{s.roomList(r.Context())})
}
