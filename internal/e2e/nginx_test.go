package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// nginx is Debian's nginx started for one test, in front of the test's
// gateways, with the repository's shared config (deploy/nginx/).
type nginx struct {
	Port int
	Dir  string // holds nginx.conf, the pid file, logs and temp files
	Proc *testenv.Process
}

// Addr returns 127.0.0.1:PORT.
func (n *nginx) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// URL returns http://127.0.0.1:PORT.
func (n *nginx) URL() string { return "http://" + n.Addr() }

// WSURL returns ws://127.0.0.1:PORT.
func (n *nginx) WSURL() string { return "ws://" + n.Addr() }

// ErrorLog returns the tail of nginx's error log.
func (n *nginx) ErrorLog() string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	if err != nil {
		return fmt.Sprintf("(no error log: %v)", err)
	}
	const max = 16 << 10
	if len(b) > max {
		b = append([]byte("..."), b[len(b)-max:]...)
	}
	return string(b)
}

var nginxConf = template.Must(template.ParseFiles(filepath.Join("testdata", "nginx.conf.tmpl")))

// startNginx writes an nginx.conf (testdata/nginx.conf.tmpl) that proxies a
// free loopback port to the gateways through the shared framecast config,
// starts nginx, and waits until /healthz answers through the proxy.
func startNginx(t *testing.T, gateways []*testenv.Gateway) *nginx {
	t.Helper()
	root := testenv.RepoRoot(t)
	n := &nginx{Port: testenv.FreePort(t), Dir: t.TempDir()}

	data := struct {
		Dir, Addr, HTTPConf, LocationConf string
		Upstreams                         []string
	}{
		Dir:          n.Dir,
		Addr:         n.Addr(),
		HTTPConf:     filepath.Join(root, "deploy", "nginx", "framecast-http.conf"),
		LocationConf: filepath.Join(root, "deploy", "nginx", "framecast.conf"),
	}
	for _, g := range gateways {
		data.Upstreams = append(data.Upstreams, "127.0.0.1:"+strconv.Itoa(g.Port))
	}
	n.run(t, nginxConf, data, "/healthz")
	return n
}

// run renders tmpl with data into n.Dir/nginx.conf, starts nginx in the
// foreground and waits until GET path answers 200 through it. nginx is
// killed when the test ends; its error log is logged if the test failed.
func (n *nginx) run(t *testing.T, tmpl *template.Template, data any, path string) {
	t.Helper()
	bin := testenv.RequireTool(t, "nginx")
	var conf strings.Builder
	if err := tmpl.Execute(&conf, data); err != nil {
		t.Fatalf("failed to render nginx.conf: %v", err)
	}
	confPath := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		t.Fatalf("failed to write nginx.conf: %v", err)
	}

	// -e: the error log nginx uses before it has read the config, which is
	// /var/log/nginx/error.log otherwise.
	n.Proc = testenv.Start(t, "nginx", bin, nil, "-p", n.Dir, "-c", confPath, "-e", filepath.Join(n.Dir, "error.log"))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- nginx error.log ---\n%s", n.ErrorLog())
		}
	})
	testenv.WaitFor(t, 10*time.Second, "nginx to answer GET "+path, func() error {
		if n.Proc.Exited() {
			return fmt.Errorf("nginx exited: %s\n%s\nconfig:\n%s", n.Proc.Output(), n.ErrorLog(), conf.String())
		}
		return testenv.HTTPStatus(n.URL()+path, http.StatusOK)
	})
}
