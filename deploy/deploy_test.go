// Package deploy_test checks the deployment files in this directory and the
// repository's docker-compose.yml without a container engine: CI machines
// have none, so images are never built there. What can be checked offline
// is: docker-compose validates the compose file, every path a Dockerfile or
// the compose file names exists, the Kubernetes manifests refer to each
// other consistently, and Debian's nginx accepts the shared nginx config.
//
// Tools (docker-compose, nginx) are skipped when missing on a developer's
// machine, but required when CI=true, where `make test` installs them.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/testenv"
)

// repoRoot is the repository root seen from this package's directory, which
// is where `go test` runs the test binary. It is also the build context of
// both images.
const repoRoot = ".."

// requireTool returns the path of a command-line tool. When it is missing the
// test is skipped, unless CI=true: CI installs every tool, so there a missing
// one is a broken install step and fails the test.
func requireTool(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	if testing.Short() { // no external process in short mode, as testenv.RequireTool
		t.Skipf("-short: the test needs %s", name)
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found on PATH; CI installs it (see the Makefile's test prerequisites)", name)
	}
	t.Skipf("%s not found on PATH; install it to run this test", name)
	return ""
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("failed to read %s: %v", name, err)
	}
	return b
}

// ---------------------------------------------------------------------------
// docker-compose.yml

// composeFile is the part of a Compose file these tests look at.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string           `yaml:"image"`
	Build       *composeBuild    `yaml:"build"`
	Entrypoint  composeCommand   `yaml:"entrypoint"`
	Environment composeEnv       `yaml:"environment"`
	Ports       []composePort    `yaml:"ports"`
	Volumes     []composeVolume  `yaml:"volumes"`
	DependsOn   composeDependsOn `yaml:"depends_on"`
	Restart     string           `yaml:"restart"`
	Deploy      struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// composeBuild is `build: DIR` or `build: {context: DIR, dockerfile: FILE}`.
type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *composeBuild) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain composeBuild
	return n.Decode((*plain)(b))
}

// composeCommand is `entrypoint:` (or `command:`) as a list or a string.
type composeCommand []string

func (c *composeCommand) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*c = strings.Fields(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*c = l
	return nil
}

// composeDependsOn is `depends_on:` as a list of services or a map of
// service to {condition: ...}; a listed service has condition
// service_started.
type composeDependsOn map[string]string

func (d *composeDependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = composeDependsOn{}
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, s := range l {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for s, v := range m {
		if v.Condition == "" {
			v.Condition = "service_started"
		}
		(*d)[s] = v.Condition
	}
	return nil
}

// composeEnv is `environment:` as a map or as a list of KEY=VALUE.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]*string
		if err := n.Decode(&m); err != nil {
			return err
		}
		for k, v := range m {
			if v != nil {
				(*e)[k] = *v
			} else {
				(*e)[k] = ""
			}
		}
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
	default:
		return fmt.Errorf("line %d: environment is neither a map nor a list", n.Line)
	}
	return nil
}

// composePort is one `ports:` entry. HostPort is empty when the container
// port is published on a random host port (which scaling allows).
type composePort struct {
	HostPort string
}

func (p *composePort) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		// [IP:][HOST:]CONTAINER[/PROTO]
		parts := strings.Split(strings.SplitN(n.Value, "/", 2)[0], ":")
		if len(parts) >= 2 {
			p.HostPort = parts[len(parts)-2]
		}
		return nil
	}
	var long struct {
		Published string `yaml:"published"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	p.HostPort = long.Published
	return nil
}

// composeVolume is one `volumes:` entry, short (SRC:DST[:MODE]) or long form.
type composeVolume struct {
	Source   string
	Target   string
	ReadOnly bool
}

func (v *composeVolume) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		switch len(parts) {
		case 1:
			v.Target = parts[0]
		case 2, 3:
			v.Source, v.Target = parts[0], parts[1]
			v.ReadOnly = len(parts) == 3 && strings.Contains(parts[2], "ro")
		default:
			return fmt.Errorf("line %d: cannot parse volume %q", n.Line, n.Value)
		}
		return nil
	}
	var long struct {
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	v.Source, v.Target, v.ReadOnly = long.Source, long.Target, long.ReadOnly
	return nil
}

// isBindMount reports whether a volume source is a host path rather than a
// named volume.
func (v composeVolume) isBindMount() bool {
	return strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/")
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal(readFile(t, filepath.Join(repoRoot, "docker-compose.yml")), &c); err != nil {
		t.Fatalf("failed to parse docker-compose.yml: %v", err)
	}
	return c
}

func TestComposeConfigValid(t *testing.T) {
	t.Run("docker-compose config", func(t *testing.T) {
		dc := requireTool(t, "docker-compose")
		cmd := exec.Command(dc, "-f", filepath.Join(repoRoot, "docker-compose.yml"), "config", "-q")
		// The file must validate with none of its variables set: that is how
		// a fresh checkout meets it.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "FRAMECAST_") && !strings.HasPrefix(kv, "COMPOSE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker-compose config -q: %v\n%s", err, out)
		}
	})

	c := loadCompose(t)
	for _, name := range []string{"redis", "gateway", "nginx", "sender", "token"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	if t.Failed() {
		return
	}

	gw := c.Services["gateway"]
	if r := gw.Deploy.Replicas; r == nil {
		t.Errorf("gateway: deploy.replicas not set, want >= 2 (fan-out over Redis is the point)")
	} else if *r < 2 {
		t.Errorf("gateway: deploy.replicas = %d, want >= 2 (fan-out over Redis is the point)", *r)
	}
	for _, p := range gw.Ports {
		if p.HostPort != "" {
			t.Errorf("gateway publishes fixed host port %s: `--scale gateway=N` would fail; nginx reaches replicas on the compose network", p.HostPort)
		}
	}
	for _, k := range []string{"GATEWAY_ADDR", "GATEWAY_REDIS_URL", "GATEWAY_AUTH", "GATEWAY_JWT_SECRET", "GATEWAY_TRUSTED_PROXIES", "GATEWAY_ALLOWED_ORIGINS"} {
		if _, ok := gw.Environment[k]; !ok {
			t.Errorf("gateway: environment %s not set", k)
		}
	}
	if got := gw.Healthcheck.Test; len(got) < 2 || got[0] != "CMD" || got[1] != "/gateway" {
		t.Errorf("gateway: healthcheck test = %q, want [CMD /gateway healthcheck] (distroless has no shell)", got)
	}

	ngx := c.Services["nginx"]
	mounts := map[string]composeVolume{}
	for _, v := range ngx.Volumes {
		mounts[path.Clean(v.Source)] = v
	}
	for _, f := range []string{"deploy/nginx/nginx.conf", "deploy/nginx/framecast-http.conf", "deploy/nginx/framecast.conf"} {
		v, ok := mounts[f]
		if !ok {
			t.Errorf("nginx: %s is not mounted (volumes: %+v)", f, ngx.Volumes)
			continue
		}
		if !v.ReadOnly {
			t.Errorf("nginx: %s is mounted read-write, want :ro", f)
		}
	}

	snd := c.Services["sender"].Environment
	if snd["SENDER_SOURCE"] != "test" {
		t.Errorf("sender: SENDER_SOURCE = %q, want test (no camera in a fresh setup)", snd["SENDER_SOURCE"])
	}
	if snd["SENDER_ROOM"] != "demo" {
		t.Errorf("sender: SENDER_ROOM = %q, want demo", snd["SENDER_ROOM"])
	}

	// Every bind mount's host side exists in the repository.
	for name, svc := range c.Services {
		for _, v := range svc.Volumes {
			if !v.isBindMount() || filepath.IsAbs(v.Source) {
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, v.Source)); err != nil {
				t.Errorf("%s: volume source %s: %v", name, v.Source, err)
			}
		}
	}
}

// composeDefault returns the default of a `${VAR:-default}` value.
func composeDefault(v string) (variable, def string, ok bool) {
	m := regexp.MustCompile(`^\$\{([A-Z0-9_]+):-([^}]*)\}$`).FindStringSubmatch(v)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// TestComposeSenderToken: `docker compose up` needs no manual step with
// publish protection on. The one-shot token service mints the sender's token
// with the gateways' secret into a named volume the sender reads; the secret
// defaults to auth.DemoSecret (which the gateway warns about) and is
// overridden by FRAMECAST_JWT_SECRET.
func TestComposeSenderToken(t *testing.T) {
	c := loadCompose(t)
	gw, tok, snd := c.Services["gateway"], c.Services["token"], c.Services["sender"]
	if gw.Image == "" || tok.Image == "" || snd.Image == "" {
		t.Fatalf("gateway, token or sender service missing or without image")
	}

	if got := gw.Environment["GATEWAY_AUTH"]; got != "publish" && got != "all" {
		t.Errorf("gateway: GATEWAY_AUTH = %q, want publish (publish protection on)", got)
	}
	secret := gw.Environment["GATEWAY_JWT_SECRET"]
	variable, def, ok := composeDefault(secret)
	switch {
	case !ok:
		t.Errorf("gateway: GATEWAY_JWT_SECRET = %q, want ${FRAMECAST_JWT_SECRET:-<demo secret>}", secret)
	case variable != "FRAMECAST_JWT_SECRET":
		t.Errorf("gateway: GATEWAY_JWT_SECRET comes from %s, want FRAMECAST_JWT_SECRET (the documented override)", variable)
	case def != auth.DemoSecret:
		t.Errorf("gateway: GATEWAY_JWT_SECRET defaults to %q, want auth.DemoSecret %q, which the gateway warns about", def, auth.DemoSecret)
	}
	if len(auth.DemoSecret) < auth.MinSecretBytes {
		t.Errorf("auth.DemoSecret is %d bytes; the gateway refuses secrets under %d", len(auth.DemoSecret), auth.MinSecretBytes)
	}

	// The token service: the gateway's image and secret, minting a publish
	// token for the sender's room into the shared volume.
	if tok.Image != gw.Image {
		t.Errorf("token: image %q, want the gateway's %q", tok.Image, gw.Image)
	}
	if got := tok.Environment["GATEWAY_JWT_SECRET"]; got != secret {
		t.Errorf("token: GATEWAY_JWT_SECRET = %q, want the gateway's %q", got, secret)
	}
	if tok.Restart != "no" {
		t.Errorf("token: restart = %q, want \"no\" (one-shot)", tok.Restart)
	}
	args := map[string]string{}
	ep := tok.Entrypoint
	if len(ep) < 2 || ep[0] != "/gateway" || ep[1] != "token" {
		t.Fatalf("token: entrypoint %q, want [/gateway token ...]", ep)
	}
	for i := 2; i+1 < len(ep); i += 2 {
		args[ep[i]] = ep[i+1]
	}
	if args["-role"] != auth.RolePublish {
		t.Errorf("token: -role %q, want publish", args["-role"])
	}
	if room := snd.Environment["SENDER_ROOM"]; args["-room"] != room {
		t.Errorf("token: -room %q, want the sender's room %q", args["-room"], room)
	}
	if _, err := time.ParseDuration(args["-ttl"]); err != nil {
		t.Errorf("token: -ttl %q: %v", args["-ttl"], err)
	}
	out := args["-out"]
	if !path.IsAbs(out) {
		t.Fatalf("token: -out %q, want an absolute path in the tokens volume", out)
	}

	// The sender reads that file from the same volume, read-only, and has
	// no SENDER_TOKEN (it and SENDER_TOKEN_FILE exclude each other).
	if _, ok := snd.Environment["SENDER_TOKEN"]; ok {
		t.Errorf("sender: SENDER_TOKEN is set; the token comes from SENDER_TOKEN_FILE")
	}
	if got := snd.Environment["SENDER_TOKEN_FILE"]; got != out {
		t.Errorf("sender: SENDER_TOKEN_FILE = %q, want the token service's -out %q", got, out)
	}
	mountOf := func(svc composeService, file string) (composeVolume, bool) {
		for _, v := range svc.Volumes {
			if !v.isBindMount() && v.Source != "" && strings.HasPrefix(file, path.Clean(v.Target)+"/") {
				return v, true
			}
		}
		return composeVolume{}, false
	}
	tv, ok := mountOf(tok, out)
	switch {
	case !ok:
		t.Errorf("token: no named volume mounted above %s (volumes %+v)", out, tok.Volumes)
	case tv.ReadOnly:
		t.Errorf("token: volume %s is read-only; the token service writes to it", tv.Source)
	}
	sv, ok := mountOf(snd, out)
	switch {
	case !ok:
		t.Errorf("sender: no named volume mounted above %s (volumes %+v)", out, snd.Volumes)
	case sv.Source != tv.Source || sv.Target != tv.Target:
		t.Errorf("sender mounts %s at %s, token service %s at %s: want the same volume at the same path", sv.Source, sv.Target, tv.Source, tv.Target)
	case !sv.ReadOnly:
		t.Errorf("sender: volume %s is mounted read-write, want :ro", sv.Source)
	}
	if _, ok := c.Volumes[tv.Source]; tv.Source != "" && !ok {
		t.Errorf("volume %s is not declared under the top-level volumes:", tv.Source)
	}
	if cond := snd.DependsOn["token"]; cond != "service_completed_successfully" {
		t.Errorf("sender: depends_on token with condition %q, want service_completed_successfully", cond)
	}

	// A fresh named volume takes the ownership of the image's directory at
	// its mount point: the gateway image must create it for its non-root
	// user (65532), or the token service cannot write there.
	owned := false
	for _, in := range parseDockerfile(readFile(t, "gateway.Dockerfile")) {
		words := strings.Fields(in.Args)
		if in.Cmd == "COPY" && len(words) > 0 && path.Clean(words[len(words)-1]) == path.Clean(tv.Target) &&
			(strings.Contains(in.Args, "--chown=65532") || strings.Contains(in.Args, "--chown=nonroot")) {
			owned = true
		}
	}
	if !owned {
		t.Errorf("deploy/gateway.Dockerfile does not create %s owned by the nonroot user (COPY --chown=65532:65532 ... %s)", tv.Target, tv.Target)
	}
}

// ---------------------------------------------------------------------------
// Dockerfiles

// dockerInstruction is one instruction of a Dockerfile with its
// continuation lines joined.
type dockerInstruction struct {
	Line int    // first line, 1-based
	Cmd  string // upper case: FROM, COPY, RUN, ...
	Args string
}

// parseDockerfile splits a Dockerfile into instructions. It knows comments
// and backslash continuations, which is all these Dockerfiles use (no escape
// directive, no heredocs).
func parseDockerfile(b []byte) []dockerInstruction {
	var (
		out   []dockerInstruction
		cur   strings.Builder
		start int
	)
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue // comments are dropped, even inside a continuation
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		cont := strings.HasSuffix(trimmed, `\`)
		cur.WriteString(strings.TrimSuffix(trimmed, `\`))
		cur.WriteString(" ")
		if cont {
			continue
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, dockerInstruction{Line: start, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// splitArgs returns the words of an instruction, exec form (JSON array) or
// shell form.
func splitArgs(args string) ([]string, error) {
	if strings.HasPrefix(args, "[") {
		var l []string
		if err := json.Unmarshal([]byte(args), &l); err != nil {
			return nil, fmt.Errorf("bad exec form %s: %w", args, err)
		}
		return l, nil
	}
	return strings.Fields(args), nil
}

var (
	goBuildRE = regexp.MustCompile(`(?:^|[\s;&|])go\s+build\b`)
	cmdPkgRE  = regexp.MustCompile(`(?:^|\s)(\./cmd/[A-Za-z0-9_./-]+)`)
	// goInstallRE matches a third-party tool built from the module proxy
	// (deploy/versitygw.Dockerfile): `go install module/path@version`.
	semverRE    = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	goInstallRE = regexp.MustCompile(`(?:^|[\s;&|])go\s+install\b[^;&|]*?\s([a-z0-9.-]+\.[a-z]+/[^\s@]+)@(\S+)`)
)

func TestDockerfilesNameExistingFiles(t *testing.T) {
	files, err := filepath.Glob("*.Dockerfile")
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/*.Dockerfile found (err %v)", err)
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			checkDockerfile(t, file)
		})
	}

	t.Run("compose build.dockerfile", func(t *testing.T) {
		for name, svc := range loadCompose(t).Services {
			if svc.Build == nil {
				continue
			}
			df := svc.Build.Dockerfile
			if df == "" {
				df = "Dockerfile"
			}
			p := filepath.Join(repoRoot, svc.Build.Context, df)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: build.dockerfile %s: %v", name, df, err)
			}
		}
	})
}

func checkDockerfile(t *testing.T, file string) {
	instrs := parseDockerfile(readFile(t, file))
	stages := map[string]bool{}
	var (
		builds     int
		finalCopy  = map[string]bool{} // destinations copied from another stage into the last stage
		entrypoint []string
	)
	for _, in := range instrs {
		switch in.Cmd {
		case "FROM":
			f := strings.Fields(in.Args)
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = true
			}
			finalCopy = map[string]bool{}
			entrypoint = nil

		case "COPY", "ADD":
			words := strings.Fields(in.Args)
			from := ""
			for len(words) > 0 && strings.HasPrefix(words[0], "--") {
				if v, ok := strings.CutPrefix(words[0], "--from="); ok {
					from = v
				}
				words = words[1:]
			}
			words, err := splitArgs(strings.Join(words, " "))
			if err != nil {
				t.Errorf("line %d: %v", in.Line, err)
				continue
			}
			if len(words) < 2 {
				t.Errorf("line %d: %s needs a source and a destination: %q", in.Line, in.Cmd, in.Args)
				continue
			}
			srcs, dst := words[:len(words)-1], words[len(words)-1]
			if from != "" {
				if !stages[from] {
					t.Errorf("line %d: %s --from=%s names no earlier stage", in.Line, in.Cmd, from)
				}
				finalCopy[dst] = true
				continue
			}
			for _, src := range srcs {
				checkContextPath(t, in, src)
			}

		case "RUN":
			for _, m := range goInstallRE.FindAllStringSubmatch(in.Args, -1) {
				builds++
				if !semverRE.MatchString(m[2]) {
					t.Errorf("line %d: go install %s@%s: pin a release (vX.Y.Z), so the image is the one that was tested", in.Line, m[1], m[2])
				}
			}
			if !goBuildRE.MatchString(in.Args) {
				continue
			}
			pkgs := cmdPkgRE.FindAllStringSubmatch(in.Args, -1)
			if len(pkgs) == 0 {
				t.Errorf("line %d: go build of no ./cmd/... package: %q", in.Line, in.Args)
			}
			for _, m := range pkgs {
				builds++
				checkMainPackage(t, in, m[1])
			}

		case "ENTRYPOINT":
			ep, err := splitArgs(in.Args)
			if err != nil {
				t.Errorf("line %d: %v", in.Line, err)
			}
			entrypoint = ep
		}
	}
	if builds == 0 {
		t.Errorf("no `go build ./cmd/...` and no pinned `go install module@version`: this test would check nothing")
	}
	if len(entrypoint) == 0 {
		t.Errorf("final stage has no ENTRYPOINT")
	} else if !finalCopy[entrypoint[0]] {
		t.Errorf("ENTRYPOINT %s is not a file copied from the build stage (copied: %v)", entrypoint[0], keys(finalCopy))
	}
}

// checkContextPath checks that a COPY/ADD source exists in the build context.
func checkContextPath(t *testing.T, in dockerInstruction, src string) {
	t.Helper()
	clean := path.Clean(src)
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		t.Errorf("line %d: %s source %s is outside the build context", in.Line, in.Cmd, src)
		return
	}
	full := filepath.Join(repoRoot, filepath.FromSlash(clean))
	if strings.ContainsAny(clean, "*?[") {
		m, err := filepath.Glob(full)
		if err != nil || len(m) == 0 {
			t.Errorf("line %d: %s source %s matches nothing in the repository", in.Line, in.Cmd, src)
		}
		return
	}
	if _, err := os.Stat(full); err != nil {
		t.Errorf("line %d: %s source %s: %v", in.Line, in.Cmd, src, err)
	}
}

// checkMainPackage checks that a `go build` target is a directory with Go
// files in it.
func checkMainPackage(t *testing.T, in dockerInstruction, pkg string) {
	t.Helper()
	dir := filepath.Join(repoRoot, filepath.FromSlash(path.Clean(pkg)))
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("line %d: go build %s: %v", in.Line, pkg, err)
		return
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			return
		}
	}
	t.Errorf("line %d: go build %s: no Go files in %s", in.Line, pkg, dir)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
// Kubernetes manifests

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`

	file string
	node *yaml.Node
}

// intOrString is a Kubernetes IntOrString (ports, targetPort).
type intOrString string

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a number or a name", n.Line)
	}
	*v = intOrString(n.Value)
	return nil
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string      `yaml:"path"`
		Port intOrString `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sDeployment struct {
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []struct {
					Name  string `yaml:"name"`
					Image string `yaml:"image"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					EnvFrom []struct {
						ConfigMapRef *struct {
							Name string `yaml:"name"`
						} `yaml:"configMapRef"`
						SecretRef *struct {
							Name string `yaml:"name"`
						} `yaml:"secretRef"`
					} `yaml:"envFrom"`
					Env []struct {
						Name      string `yaml:"name"`
						ValueFrom *struct {
							SecretKeyRef *struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
							ConfigMapKeyRef *struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"configMapKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
					LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
					Resources      struct {
						Requests map[string]string `yaml:"requests"`
						Limits   map[string]string `yaml:"limits"`
					} `yaml:"resources"`
					SecurityContext struct {
						ReadOnlyRootFilesystem *bool `yaml:"readOnlyRootFilesystem"`
					} `yaml:"securityContext"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sService struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type k8sHPA struct {
	Spec struct {
		ScaleTargetRef struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Name       string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
	} `yaml:"spec"`
}

type k8sIngressBackend struct {
	Service *struct {
		Name string `yaml:"name"`
		Port struct {
			Name   string `yaml:"name"`
			Number int    `yaml:"number"`
		} `yaml:"port"`
	} `yaml:"service"`
}

type k8sIngress struct {
	Spec struct {
		DefaultBackend *k8sIngressBackend `yaml:"defaultBackend"`
		Rules          []struct {
			HTTP *struct {
				Paths []struct {
					Path    string            `yaml:"path"`
					Backend k8sIngressBackend `yaml:"backend"`
				} `yaml:"paths"`
			} `yaml:"http"`
		} `yaml:"rules"`
	} `yaml:"spec"`
}

type k8sPDB struct {
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type k8sData struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// k8sAPIVersions is every kind deploy/k8s may hold, with its API version.
var k8sAPIVersions = map[string]string{
	"ConfigMap":               "v1",
	"Secret":                  "v1",
	"Service":                 "v1",
	"Deployment":              "apps/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"Ingress":                 "networking.k8s.io/v1",
	"PodDisruptionBudget":     "policy/v1",
}

func loadK8s(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/k8s/*.yaml (err %v)", err)
	}
	var objs []k8sObject
	for _, f := range files {
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, f)))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
				continue // empty document
			}
			o := k8sObject{file: f, node: &n}
			if err := n.Decode(&o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func decodeK8s(t *testing.T, o k8sObject, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s: %s %s: %v", o.file, o.Kind, o.Metadata.Name, err)
	}
}

// subset reports whether every label of sel is in labels, with the same value.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestK8sManifests(t *testing.T) {
	objs := loadK8s(t)
	byKind := map[string][]k8sObject{}
	seen := map[string]string{}
	for _, o := range objs {
		id := o.Kind + "/" + o.Metadata.Name
		switch {
		case o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "":
			t.Errorf("%s: object without apiVersion, kind or metadata.name: %q %q %q", o.file, o.APIVersion, o.Kind, o.Metadata.Name)
			continue
		case k8sAPIVersions[o.Kind] == "":
			t.Errorf("%s: unexpected kind %s (expected one of %v)", o.file, o.Kind, keysOf(k8sAPIVersions))
		case k8sAPIVersions[o.Kind] != o.APIVersion:
			t.Errorf("%s: %s has apiVersion %s, want %s", o.file, id, o.APIVersion, k8sAPIVersions[o.Kind])
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("%s: %s already defined in %s", o.file, id, prev)
		}
		seen[id] = o.file
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "Ingress", "ConfigMap", "Secret"} {
		if len(byKind[kind]) != 1 {
			t.Fatalf("want exactly one %s, have %d", kind, len(byKind[kind]))
		}
	}

	configMaps := map[string]k8sData{}
	for _, o := range byKind["ConfigMap"] {
		var d k8sData
		decodeK8s(t, o, &d)
		configMaps[o.Metadata.Name] = d
	}
	secrets := map[string]k8sData{}
	for _, o := range byKind["Secret"] {
		var d k8sData
		decodeK8s(t, o, &d)
		secrets[o.Metadata.Name] = d
	}

	// Deployment.
	depObj := byKind["Deployment"][0]
	var dep k8sDeployment
	decodeK8s(t, depObj, &dep)
	podLabels := dep.Spec.Template.Metadata.Labels
	if sel := dep.Spec.Selector.MatchLabels; len(sel) == 0 || !subset(sel, podLabels) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", sel, podLabels)
	}
	if r := dep.Spec.Replicas; r != nil && *r < 2 {
		t.Errorf("Deployment replicas = %d, want >= 2 (or unset, left to the HPA)", *r)
	}
	pod := dep.Spec.Template.Spec
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= 0 {
		t.Errorf("Deployment has no terminationGracePeriodSeconds: the gateway needs time to close WebSockets with 1001")
	}
	if rn := pod.SecurityContext.RunAsNonRoot; rn == nil || !*rn {
		t.Errorf("Deployment pod securityContext.runAsNonRoot is not true")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	portNames := map[string]bool{}
	for _, p := range ctr.Ports {
		portNames[p.Name] = true
		portNames[strconv.Itoa(p.ContainerPort)] = true
	}
	if !portNames["8000"] {
		t.Errorf("container ports %+v do not include 8000 (GATEWAY_ADDR)", ctr.Ports)
	}
	probes := []struct {
		name string
		p    *k8sProbe
		path string
	}{
		{"readinessProbe", ctr.ReadinessProbe, "/readyz"},
		{"livenessProbe", ctr.LivenessProbe, "/healthz"},
	}
	for _, pr := range probes {
		switch {
		case pr.p == nil || pr.p.HTTPGet == nil:
			t.Errorf("container has no %s.httpGet", pr.name)
		case pr.p.HTTPGet.Path != pr.path:
			t.Errorf("%s path = %s, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		case !portNames[string(pr.p.HTTPGet.Port)]:
			t.Errorf("%s port %s is not a container port", pr.name, pr.p.HTTPGet.Port)
		}
	}
	if len(ctr.Resources.Requests) == 0 || ctr.Resources.Requests["cpu"] == "" {
		t.Errorf("container has no cpu request: the HPA's utilization target needs one")
	}
	if len(ctr.Resources.Limits) == 0 {
		t.Errorf("container has no resource limits")
	}
	if ro := ctr.SecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
		t.Errorf("container securityContext.readOnlyRootFilesystem is not true")
	}
	for _, ef := range ctr.EnvFrom {
		if ef.ConfigMapRef != nil {
			if _, ok := configMaps[ef.ConfigMapRef.Name]; !ok {
				t.Errorf("envFrom names ConfigMap %s, which deploy/k8s does not define", ef.ConfigMapRef.Name)
			}
		}
		if ef.SecretRef != nil {
			if _, ok := secrets[ef.SecretRef.Name]; !ok {
				t.Errorf("envFrom names Secret %s, which deploy/k8s does not define", ef.SecretRef.Name)
			}
		}
	}
	jwtFromSecret := false
	for _, e := range ctr.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		s, ok := secrets[ref.Name]
		if !ok {
			t.Errorf("env %s names Secret %s, which deploy/k8s does not define", e.Name, ref.Name)
			continue
		}
		_, inData := s.Data[ref.Key]
		_, inString := s.StringData[ref.Key]
		if !inData && !inString {
			t.Errorf("env %s names key %s, which Secret %s does not have", e.Name, ref.Key, ref.Name)
		}
		if e.Name == "GATEWAY_JWT_SECRET" {
			jwtFromSecret = true
			// The example's placeholder must at least start: the gateway
			// refuses shorter secrets.
			if v, ok := s.StringData[ref.Key]; ok && len(v) < auth.MinSecretBytes {
				t.Errorf("Secret %s key %s: placeholder of %d bytes; the gateway refuses secrets under %d", ref.Name, ref.Key, len(v), auth.MinSecretBytes)
			}
		}
	}
	if !jwtFromSecret {
		t.Errorf("GATEWAY_JWT_SECRET does not come from a Secret")
	}
	for name, cm := range configMaps {
		if _, ok := cm.Data["GATEWAY_JWT_SECRET"]; ok {
			t.Errorf("ConfigMap %s holds GATEWAY_JWT_SECRET: it belongs in the Secret", name)
		}
	}

	// Service.
	svcObj := byKind["Service"][0]
	var svc k8sService
	decodeK8s(t, svcObj, &svc)
	if len(svc.Spec.Selector) == 0 || !subset(svc.Spec.Selector, podLabels) {
		t.Errorf("Service selector %v does not match the Deployment's pod labels %v", svc.Spec.Selector, podLabels)
	}
	svcPorts := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = true
		svcPorts[strconv.Itoa(p.Port)] = true
		if !portNames[string(p.TargetPort)] {
			t.Errorf("Service port %d targets %s, which is not a container port", p.Port, p.TargetPort)
		}
	}

	// HPA.
	var hpa k8sHPA
	decodeK8s(t, byKind["HorizontalPodAutoscaler"][0], &hpa)
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != depObj.Metadata.Name {
		t.Errorf("HPA scales %s %s, want Deployment %s", ref.Kind, ref.Name, depObj.Metadata.Name)
	}
	if mn := hpa.Spec.MinReplicas; mn == nil {
		t.Errorf("HPA has no minReplicas")
	} else if *mn < 1 || *mn > hpa.Spec.MaxReplicas {
		t.Errorf("HPA minReplicas %d and maxReplicas %d are inconsistent", *mn, hpa.Spec.MaxReplicas)
	}

	// Ingress.
	var ing k8sIngress
	decodeK8s(t, byKind["Ingress"][0], &ing)
	backends := []k8sIngressBackend{}
	if ing.Spec.DefaultBackend != nil {
		backends = append(backends, *ing.Spec.DefaultBackend)
	}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			backends = append(backends, p.Backend)
		}
	}
	if len(backends) == 0 {
		t.Errorf("Ingress has no backend")
	}
	for _, b := range backends {
		switch {
		case b.Service == nil:
			t.Errorf("Ingress backend without a service")
		case b.Service.Name != svcObj.Metadata.Name:
			t.Errorf("Ingress backend names Service %s, want %s", b.Service.Name, svcObj.Metadata.Name)
		case b.Service.Port.Name != "" && !svcPorts[b.Service.Port.Name],
			b.Service.Port.Name == "" && !svcPorts[strconv.Itoa(b.Service.Port.Number)]:
			t.Errorf("Ingress backend port %+v is not a port of Service %s", b.Service.Port, svcObj.Metadata.Name)
		}
	}

	// PodDisruptionBudgets, if any.
	for _, o := range byKind["PodDisruptionBudget"] {
		var pdb k8sPDB
		decodeK8s(t, o, &pdb)
		if sel := pdb.Spec.Selector.MatchLabels; len(sel) == 0 || !subset(sel, podLabels) {
			t.Errorf("PodDisruptionBudget %s selector %v does not match the Deployment's pod labels", o.Metadata.Name, sel)
		}
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---------------------------------------------------------------------------
// Settings agree across compose, systemd and Kubernetes

var envKeyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// envFileKeys returns the KEY of every KEY=value line of an env file,
// commented-out ones included (they document optional settings).
func envFileKeys(t *testing.T, name string) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	for _, line := range strings.Split(string(readFile(t, name)), "\n") {
		line = strings.TrimSpace(line)
		line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		if k, _, ok := strings.Cut(line, "="); ok && envKeyRE.MatchString(k) {
			keys[k] = true
		}
	}
	return keys
}

func TestSettingsAgree(t *testing.T) {
	c := loadCompose(t)

	// The gateway is configured with the same settings everywhere.
	want := map[string]bool{}
	for k := range c.Services["gateway"].Environment {
		want[k] = true
	}
	if got := envFileKeys(t, filepath.Join("systemd", "gateway.env.example")); !equalSets(got, want) {
		t.Errorf("systemd/gateway.env.example sets %v, compose's gateway sets %v", keys(got), keys(want))
	}
	k8s := map[string]bool{}
	for _, o := range loadK8s(t) {
		switch o.Kind {
		case "ConfigMap":
			var d k8sData
			decodeK8s(t, o, &d)
			for k := range d.Data {
				k8s[k] = true
			}
		case "Deployment":
			var dep k8sDeployment
			decodeK8s(t, o, &dep)
			for _, ctr := range dep.Spec.Template.Spec.Containers {
				for _, e := range ctr.Env {
					k8s[e.Name] = true
				}
			}
		}
	}
	if !equalSets(k8s, want) {
		t.Errorf("k8s ConfigMap+Deployment set %v, compose's gateway sets %v", keys(k8s), keys(want))
	}

	// The sender's example env file documents at least what compose sets.
	senderEnv := envFileKeys(t, filepath.Join("systemd", "sender.env.example"))
	for k := range c.Services["sender"].Environment {
		if !senderEnv[k] {
			t.Errorf("systemd/sender.env.example does not mention %s, which compose's sender sets", k)
		}
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// nginx

// nginxTestPaths returns main- and http-level directives that keep every
// file Debian's nginx would write (pid, logs, temp files) inside dir.
func nginxTestPaths(dir string) (mainLevel, httpLevel string) {
	mainLevel = fmt.Sprintf("daemon off;\npid %s;\nerror_log %s;\n",
		filepath.Join(dir, "nginx.pid"), filepath.Join(dir, "error.log"))
	var b strings.Builder
	fmt.Fprintf(&b, "access_log %s;\n", filepath.Join(dir, "access.log"))
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "%s_temp_path %s;\n", temp, filepath.Join(dir, temp))
	}
	return mainLevel, b.String()
}

// nginxTest runs `nginx -t` on a config and fails the test if nginx rejects it.
func nginxTest(t *testing.T, nginx, dir, conf string) {
	t.Helper()
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: the error log nginx uses before it has read the config; the
	// compiled-in one (/var/log/nginx/error.log) may not be writable.
	out, err := exec.Command(nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t rejected the config: %v\n%s\nconfig:\n%s", err, out, conf)
	}
}

// composeNginxConf returns deploy/nginx/nginx.conf (what compose runs)
// rewritten for Debian's nginx on this machine: its own paths instead of
// /etc/nginx and /var, listening on listen, and with the gateways at
// gateways (host:port) instead of compose's `gateway:8000`. Everything else,
// the log format and the resolver included, is the file as shipped.
func composeNginxConf(t *testing.T, dir, listen, gateways string) string {
	t.Helper()
	nginxDir, err := filepath.Abs("nginx")
	if err != nil {
		t.Fatal(err)
	}
	mainLevel, _ := nginxTestPaths(dir)
	var temps strings.Builder
	for _, temp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "%s_temp_path %s;\n", temp, filepath.Join(dir, temp))
	}
	mime := "include /etc/nginx/mime.types;"
	if _, err := os.Stat("/etc/nginx/mime.types"); err != nil {
		mime = "" // not Debian's layout; the types do not matter here
	}
	rewrites := []struct {
		re, with string
		optional bool
	}{
		{`(?m)^\s*pid\s+[^;]*;`, "", false},
		{`(?m)^\s*error_log\s+[^;]*;`, "", false},
		{`(?m)^\s*user\s+[^;]*;`, "", true},
		{`(?m)^\s*worker_processes\s+[^;]*;`, mainLevel + "worker_processes 1;", false},
		// Above the hard limit of an unprivileged test: not what is tested.
		{`(?m)^\s*worker_rlimit_nofile\s+[^;]*;`, "", true},
		{`access_log\s+/var/log/nginx/access\.log`, temps.String() + "access_log " + filepath.Join(dir, "access.log"), false},
		{`include\s+/etc/nginx/mime\.types;`, mime, true},
		{`include\s+/etc/nginx/framecast-http\.conf;`, "include " + filepath.Join(nginxDir, "framecast-http.conf") + ";", false},
		{`include\s+/etc/nginx/framecast\.conf;`, "include " + filepath.Join(nginxDir, "framecast.conf") + ";", false},
		{`set\s+\$framecast_upstream\s+gateway:8000;`, "set $framecast_upstream " + gateways + ";", false},
		{`listen\s+80;`, "listen " + listen + ";", false},
	}
	conf := string(readFile(t, filepath.Join(nginxDir, "nginx.conf")))
	for _, r := range rewrites {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(conf) {
			if r.optional {
				continue
			}
			t.Fatalf("deploy/nginx/nginx.conf has no %s any more: update this test", r.re)
		}
		conf = re.ReplaceAllLiteralString(conf, r.with)
	}
	return conf
}

func TestNginxSharedConfigParses(t *testing.T) {
	nginxDir, err := filepath.Abs("nginx")
	if err != nil {
		t.Fatal(err)
	}
	httpConf := filepath.Join(nginxDir, "framecast-http.conf")
	serverConf := filepath.Join(nginxDir, "framecast.conf")
	composeConf := string(readFile(t, filepath.Join(nginxDir, "nginx.conf")))

	// Without nginx: the compose config must include both shared files, so
	// the compose setup and the end-to-end test run the same locations, and
	// find the replicas through Docker's DNS at run time in a way that
	// nginx 1.22 (Debian 12, the project's tests) knows as well as 1.27.
	for _, f := range []string{"framecast-http.conf", "framecast.conf"} {
		if !regexp.MustCompile(`(?m)^\s*include\s+/etc/nginx/` + regexp.QuoteMeta(f) + `;`).MatchString(composeConf) {
			t.Errorf("deploy/nginx/nginx.conf does not include /etc/nginx/%s (where compose mounts it)", f)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*resolver\s+127\.0\.0\.11\s`).MatchString(composeConf) {
		t.Errorf("deploy/nginx/nginx.conf has no `resolver 127.0.0.11` (Docker's DNS)")
	}
	if !regexp.MustCompile(`(?m)^\s*set\s+\$framecast_upstream\s+gateway:8000;`).MatchString(composeConf) {
		t.Errorf("deploy/nginx/nginx.conf does not set $framecast_upstream to gateway:8000")
	}
	for name, conf := range map[string]string{"nginx.conf": composeConf, "framecast.conf": string(readFile(t, serverConf))} {
		if regexp.MustCompile(`(?m)^\s*server\s+[^;]*\sresolve[\s;]`).MatchString(conf) {
			t.Errorf("%s uses `resolve` on an upstream server: nginx 1.22 refuses it", name)
		}
	}
	shared := string(readFile(t, serverConf))
	if n := strings.Count(shared, "proxy_pass http://$framecast_upstream;"); n != strings.Count(shared, "proxy_pass") || n == 0 {
		t.Errorf("framecast.conf: %d of %d proxy_pass go to http://$framecast_upstream", n, strings.Count(shared, "proxy_pass"))
	}

	nginx := requireTool(t, "nginx", "/usr/sbin/nginx")

	// The shared files with a fixed upstream group (the end-to-end test's
	// and systemd hosts' way).
	t.Run("shared files", func(t *testing.T) {
		dir := t.TempDir()
		mainLevel, httpLevel := nginxTestPaths(dir)
		conf := mainLevel + "events {}\nhttp {\n" + httpLevel +
			"include " + httpConf + ";\n" +
			"upstream framecast_gateways { server 127.0.0.1:1; }\n" +
			"server {\nlisten 127.0.0.1:8080;\ninclude " + serverConf + ";\n}\n}\n"
		nginxTest(t, nginx, dir, conf)
	})

	// The compose config itself, only its paths changed.
	t.Run("compose nginx.conf", func(t *testing.T) {
		dir := t.TempDir()
		nginxTest(t, nginx, dir, composeNginxConf(t, dir, "127.0.0.1:8080", "gateway:8000"))
	})

	// The TLS example inside the compose config, in place of its server,
	// with a throwaway certificate: HTTP/2 as nginx 1.22 spells it.
	t.Run("tls example", func(t *testing.T) {
		openssl := requireTool(t, "openssl")
		dir := t.TempDir()
		crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		if out, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
			"-subj", "/CN=cams.example.com", "-keyout", key, "-out", crt).CombinedOutput(); err != nil {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
		tls := string(readFile(t, filepath.Join(nginxDir, "tls.example.conf")))
		if !regexp.MustCompile(`(?m)^\s*listen\s+443\s+ssl\s+http2;`).MatchString(tls) {
			t.Errorf("tls.example.conf: no `listen 443 ssl http2;` (HTTP/2 on nginx 1.22)")
		}
		tls = regexp.MustCompile(`/etc/letsencrypt/live/cams\.example\.com/fullchain\.pem`).ReplaceAllLiteralString(tls, crt)
		tls = regexp.MustCompile(`/etc/letsencrypt/live/cams\.example\.com/privkey\.pem`).ReplaceAllLiteralString(tls, key)
		tls = regexp.MustCompile(`(?m)^\s*listen\s+\[::\]:[^;]*;`).ReplaceAllLiteralString(tls, "")
		tls = regexp.MustCompile(`listen\s+(80|443)`).ReplaceAllString(tls, "listen 127.0.0.1:1${1}")
		tls = strings.ReplaceAll(tls, "include /etc/nginx/framecast.conf;", "include "+serverConf+";")
		conf := composeNginxConf(t, dir, "127.0.0.1:8080", "gateway:8000")
		// Replace the compose server block (the last one) with the example's two.
		i := strings.LastIndex(conf, "server {")
		j := strings.LastIndex(conf, "}")
		if i < 0 || j < i {
			t.Fatalf("cannot find the server block of nginx.conf")
		}
		conf = conf[:i] + tls + "\n" + conf[j:]
		nginxTest(t, nginx, dir, conf)
	})
}

// TestNginxAccessLogWithoutQuery: the access log of the compose config
// keeps request paths but no query string, of the request or of its
// Referer: the viewer page carries its token as ?token= (issue 12).
func TestNginxAccessLogWithoutQuery(t *testing.T) {
	nginx := requireTool(t, "nginx", "/usr/sbin/nginx")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") == "" {
			http.Error(w, "the query string did not reach the gateway", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer upstream.Close()
	dir := t.TempDir()
	listen := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	conf := composeNginxConf(t, dir, listen, strings.TrimPrefix(upstream.URL, "http://"))
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file)
	// A file, not a pipe: a worker outliving its master would hold a pipe
	// open and Wait with it.
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start nginx: %v", err)
	}
	defer func() {
		// SIGTERM: the master stops its worker, then exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	const secret = "s3cr3t-token-value"
	paths := []string{"/video/demo/?token=" + secret, "/ws/video/demo/?role=view&token=" + secret, "/api/rooms?token=" + secret}
	get := func(p string) error {
		req, err := http.NewRequest(http.MethodGet, "http://"+listen+p, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Referer", "http://"+listen+"/video/demo/?token="+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s through nginx: %s %s", p, resp.Status, body)
		}
		return nil
	}
	testenv.WaitFor(t, 10*time.Second, "nginx answering", func() error { return get(paths[0]) })
	for _, p := range paths[1:] {
		if err := get(p); err != nil {
			t.Fatal(err)
		}
	}
	// nginx writes a request's line once it has sent the response, so the
	// client may read the response first: wait for the lines.
	var logged string
	testenv.WaitFor(t, 5*time.Second, "the three requests in the access log", func() error {
		logged = string(readFile(t, filepath.Join(dir, "access.log")))
		for _, want := range []string{`"GET /video/demo/ HTTP/1.1" 200`, `"GET /ws/video/demo/ HTTP/1.1" 200`, `"GET /api/rooms HTTP/1.1" 200`, `/video/demo/" "Go-http-client`} {
			if !strings.Contains(logged, want) {
				return fmt.Errorf("access log has no %s:\n%s", want, logged)
			}
		}
		return nil
	})
	if strings.Contains(logged, secret) || strings.Contains(logged, "token=") {
		t.Errorf("access log holds the token:\n%s", logged)
	}
}
