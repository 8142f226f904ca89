package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
)

// viewerReadLimit is the read limit of view-only connections: viewers send
// nothing, so any data message closes them (1008, from CloseRead), and one
// larger than this is refused before it is buffered.
const viewerReadLimit = 1024

// excessWindow is the window of the publish rate's cut-off: a publisher that
// has more than GATEWAY_PUBLISH_BURST frames dropped for rate within any
// excessWindow is closed with 1008. A publisher that runs slightly over the
// rate loses a frame now and then; one that keeps sending well over it
// (more than rate + burst/2 frames per second, sustained) is cut off.
const excessWindow = 2 * time.Second

// Errors of the publish rate limit.
var (
	errFrameDropped = errors.New("frame over the publish rate")
	errRateExceeded = errors.New("publish rate exceeded")
)

// publishLimiter applies GATEWAY_PUBLISH_RATE and GATEWAY_PUBLISH_BURST to
// one publishing connection. It is used by that connection's reader only
// (not safe for concurrent use).
type publishLimiter struct {
	tokens *rate.Limiter // nil: no limit
	drops  []time.Time   // ring of the last burst+1 drop times; zero = none
	next   int
}

func newPublishLimiter(perSecond float64, burst int) *publishLimiter {
	if perSecond <= 0 {
		return &publishLimiter{}
	}
	return &publishLimiter{
		tokens: rate.NewLimiter(rate.Limit(perSecond), burst),
		drops:  make([]time.Time, burst+1),
	}
}

// admit returns nil if a frame read at now may be published,
// errFrameDropped if it is over the rate and must be dropped, and
// errRateExceeded if this drop makes more than burst drops within
// excessWindow.
func (p *publishLimiter) admit(now time.Time) error {
	if p.tokens == nil || p.tokens.AllowN(now, 1) {
		return nil
	}
	p.drops[p.next] = now
	p.next = (p.next + 1) % len(p.drops)
	// The ring now holds the last burst+1 drops, the oldest at p.next.
	if oldest := p.drops[p.next]; !oldest.IsZero() && now.Sub(oldest) < excessWindow {
		return fmt.Errorf("%w: more than %d frames over the rate within %v", errRateExceeded, len(p.drops)-1, excessWindow)
	}
	return errFrameDropped
}

// admitFrame applies l to a frame just read: it returns true if the frame
// may be published. A dropped frame is counted; a sustained excess returns
// the error that ends the connection (1008 "publish rate exceeded").
func (s *Server) admitFrame(l *publishLimiter) (bool, error) {
	switch err := l.admit(time.Now()); {
	case err == nil:
		return true, nil
	case errors.Is(err, errFrameDropped):
		s.metrics.rejected.WithLabelValues("rate_limited").Inc()
		return false, nil
	default:
		s.metrics.rejected.WithLabelValues("rate_exceeded").Inc()
		return false, ended(endRate, err)
	}
}

// limits are a replica's connection limits and what they count by.
type limits struct {
	readBudget *readBudget // memory in messages not yet complete, all connections
	conns      *connLimiter
	idleRooms  *addrRooms // rooms without a publisher per address (roombudget.go)
	proxies    trustedProxies
	log        *slog.Logger

	xffWarning sync.Once
}

func newLimits(cfg *Config, log *slog.Logger) (*limits, error) {
	proxies, err := parseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, settingError("TRUSTED_PROXIES", "%v", err)
	}
	return &limits{
		readBudget: &readBudget{max: int64(cfg.ReadBudgetMB) << 20},
		conns:      newConnLimiter(cfg.MaxConnections, cfg.MaxConnectionsPerIP),
		idleRooms:  newAddrRooms(cfg.MaxIdleRoomsPerIP),
		proxies:    proxies, log: log,
	}, nil
}

// connLimiter counts open connections per replica and per client address.
// It is safe for concurrent use.
type connLimiter struct {
	max, perAddr int // 0 = no limit

	mu     sync.Mutex
	total  int
	byAddr map[netip.Addr]int // guarded by mu; entries at zero are deleted
}

func newConnLimiter(max, perAddr int) *connLimiter {
	return &connLimiter{max: max, perAddr: perAddr, byAddr: make(map[netip.Addr]int)}
}

// Errors of the connection limits.
var (
	errTooManyConns     = errors.New("gateway at its connection limit")
	errTooManyFromAddr  = errors.New("too many connections from your address")
	errNotTrustedCIDR   = errors.New("not an IP address or CIDR prefix")
	errBadOriginPattern = errors.New("bad pattern")
)

// acquire counts one more connection from addr and returns the func that
// uncounts it (idempotent), or an error if a limit is reached.
func (l *connLimiter) acquire(addr netip.Addr) (release func(), err error) {
	key := limitKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.total >= l.max {
		return nil, fmt.Errorf("%w (%d)", errTooManyConns, l.max)
	}
	if l.perAddr > 0 && l.byAddr[key] >= l.perAddr {
		return nil, fmt.Errorf("%w (%d)", errTooManyFromAddr, l.perAddr)
	}
	l.total++
	l.byAddr[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.byAddr[key]--; l.byAddr[key] <= 0 {
				delete(l.byAddr, key)
			}
		})
	}, nil
}

// limitKey is the address a per-address limit counts: IPv4 addresses one by
// one, IPv6 addresses by /64, the block one subscriber usually holds whole.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// admitConnection counts a new long-lived connection against
// GATEWAY_MAX_CONNECTIONS and GATEWAY_MAX_CONNECTIONS_PER_IP, before the
// upgrade. Over a limit it answers 429 and returns ok == false; otherwise
// the caller must call release when the connection ends.
func (s *Server) admitConnection(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	addr := s.limits.clientAddr(r)
	release, err := s.limits.conns.acquire(addr)
	if err != nil {
		reason := "too_many_connections"
		if errors.Is(err, errTooManyFromAddr) {
			reason = "too_many_connections_per_ip"
		}
		s.metrics.rejected.WithLabelValues(reason).Inc()
		s.log.Debug("refused: connection limit", "client", addr, "err", err)
		w.Header().Set("Retry-After", "5")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return nil, false
	}
	return release, true
}

// trustedProxies are the peers whose X-Forwarded-For is believed.
type trustedProxies []netip.Prefix

func parseTrustedProxies(list []string) (trustedProxies, error) {
	var out trustedProxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, errNotTrustedCIDR)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (t trustedProxies) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr returns the address of the client behind r. It is the TCP
// peer, unless the peer is a trusted proxy: then it is the right-most
// address of X-Forwarded-For that is not a trusted proxy (each proxy
// appends the address it got the request from, so addresses left of the
// first untrusted one are whatever the client chose to send). When every
// address is trusted it is the left-most; an entry that does not parse
// stops the walk at the hop that added it.
//
// X-Forwarded-For from an untrusted peer is ignored, and the first time
// that happens a warning says so: it usually means GATEWAY_TRUSTED_PROXIES
// is missing the proxy, and every client then shares the proxy's limit.
func (l *limits) clientAddr(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := peer.Addr().Unmap()
	xff := r.Header.Values("X-Forwarded-For")
	if !l.proxies.contains(addr) {
		if len(xff) > 0 {
			l.xffWarning.Do(func() {
				l.log.Warn("ignoring X-Forwarded-For from a peer not in GATEWAY_TRUSTED_PROXIES; "+
					"if it is your proxy, every client behind it shares one per-address limit", "peer", addr)
			})
		}
		return addr
	}
	hops := strings.Split(strings.Join(xff, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			break
		}
		addr = hop
		if !l.proxies.contains(hop) {
			break
		}
	}
	return addr
}

// parseHop parses one X-Forwarded-For entry: an address, or an address and
// port as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// validateLimits checks the limit and network settings; Validate calls it.
func (c *Config) validateLimits() error {
	if c.PublishRate < 0 {
		return settingError("PUBLISH_RATE", "%v must not be negative", c.PublishRate)
	}
	if c.PublishRate > 0 && (c.PublishBurst < 1 || c.PublishBurst > 10000) {
		return settingError("PUBLISH_BURST", "%d is outside 1..10000", c.PublishBurst)
	}
	if c.MaxConnections < 0 {
		return settingError("MAX_CONNECTIONS", "%d must not be negative", c.MaxConnections)
	}
	if c.MaxConnectionsPerIP < 0 {
		return settingError("MAX_CONNECTIONS_PER_IP", "%d must not be negative", c.MaxConnectionsPerIP)
	}
	if c.MaxIdleRoomsPerIP < 0 {
		return settingError("MAX_IDLE_ROOMS_PER_IP", "%d must not be negative", c.MaxIdleRoomsPerIP)
	}
	if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
		return settingError("TRUSTED_PROXIES", "%v", err)
	}
	for _, p := range c.AllowedOrigins {
		if _, err := path.Match(strings.ToLower(p), ""); err != nil {
			return settingError("ALLOWED_ORIGINS", "%q: %v", p, errBadOriginPattern)
		}
	}
	return nil
}

// viewerCloseRead is websocket.Conn.CloseRead for view-only connections,
// without its self-deadlock: CloseRead's goroutine answers a data message by
// calling Close, and Close waits for that same goroutine to exit, so the
// connection (its slot, gauge and goroutines) lingered 15 s after the 1008
// (coder/websocket v1.8.15; github.com/coder/websocket/issues/429). Here the
// reading goroutine is ours, and Close does not wait for it.
//
// It reads control frames (pongs, close) until the connection ends, and
// closes the connection with 1008 "unexpected data message" if the peer
// sends a data message; the returned context is then cancelled with the
// reason as its cause. Call c.SetReadLimit(viewerReadLimit) first.
func (s *Server) viewerCloseRead(ctx context.Context, c *websocket.Conn) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		_, _, err := c.Reader(ctx)
		if err == nil {
			err = ended(endViewerData, nil)
			s.metrics.rejected.WithLabelValues("viewer_sent_data").Inc()
		}
		cancel(err)
	}()
	return ctx
}
