package server

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults of the failed-login limiter (Options.LoginFailureLimit, ...).
const (
	DefaultLoginFailureLimit  = 5
	DefaultLoginFailureWindow = time.Minute
	DefaultLoginFailureDelay  = time.Second
)

// loginLimiter counts failed logins (AMQP and management API) per source address in fixed
// windows. Up to limit failures in a window are logged one by one and answered at once; past
// that, a failure is answered only after delay (a tarpit, slept by the connection's own
// goroutine) and is not logged: one line says the address is being limited, and the first failure
// of a later window logs how many were held back. Successful logins never consult it.
//
// Sources are IP addresses (an IPv6 address counts as its /64). The map is swept of ended windows
// as it grows, and it holds at most maxLoginSources addresses: past that, new addresses are not
// tracked (their failures are logged and answered at once) until a sweep makes room.
type loginLimiter struct {
	limit  int // <= 0: no limiting (every failure is logged and answered at once)
	window time.Duration
	delay  time.Duration
	log    *slog.Logger
	now    func() time.Time

	mu struct {
		sync.Mutex // a leaf
		sources    map[string]*loginSource
		nextSweep  int
	}
}

const maxLoginSources = 1 << 16

type loginSource struct {
	start    time.Time // the window's start
	failures int       // in this window
	held     int       // failures past the limit in this window (delayed, not logged one by one)
}

func newLoginLimiter(o *Options) *loginLimiter {
	l := &loginLimiter{
		limit: o.LoginFailureLimit, window: o.LoginFailureWindow, delay: o.LoginFailureDelay,
		log: o.Logger, now: time.Now,
	}
	l.mu.sources, l.mu.nextSweep = map[string]*loginSource{}, 1024
	return l
}

// failed records a failed login by user from remote, logs it as the window allows (never with a
// password: callers pass only the name and the reason), and returns how long to wait before
// answering it.
func (l *loginLimiter) failed(remote net.Addr, user, mechanism, reason string) time.Duration {
	key := sourceKey(remote)
	if l.limit <= 0 || key == "" {
		l.log.Warn("login failed", "user", user, "remote", addrString(remote), "mechanism", mechanism, "reason", reason)
		return 0
	}
	now := l.now()
	l.mu.Lock()
	s := l.mu.sources[key]
	var heldBefore int
	var heldWindow time.Time
	if s != nil && now.Sub(s.start) >= l.window {
		heldBefore, heldWindow = s.held, s.start
		s.start, s.failures, s.held = now, 0, 0
	}
	var swept []heldReport
	if s == nil {
		if len(l.mu.sources) >= l.mu.nextSweep {
			swept = l.sweepLocked(now)
		}
		if len(l.mu.sources) < maxLoginSources {
			s = &loginSource{start: now}
			l.mu.sources[key] = s
		}
	}
	var n int
	if s != nil {
		s.failures++
		n = s.failures
		if n > l.limit {
			s.held++
		}
	}
	l.mu.Unlock()

	if heldBefore > 0 {
		swept = append(swept, heldReport{key, heldBefore, heldWindow})
	}
	for _, r := range swept {
		l.log.Warn("failed logins held back in an earlier window", "remote", r.source, "count", r.count,
			"window_start", r.start.UTC().Format(time.RFC3339))
	}
	switch {
	case n <= l.limit:
		l.log.Warn("login failed", "user", user, "remote", addrString(remote), "mechanism", mechanism, "reason", reason)
		return 0
	case n == l.limit+1:
		l.log.Warn("too many failed logins from this address: further failures are delayed and counted, not logged, until the window ends",
			"remote", key, "limit", l.limit, "window", l.window.String(), "delay", l.delay.String(), "user", user)
	}
	return l.delay
}

// heldReport is a past window's count of failures that were not logged one by one.
type heldReport struct {
	source string
	count  int
	start  time.Time
}

// sweepLocked drops sources whose window has ended and returns what they held back, to be logged
// once l.mu is released.
func (l *loginLimiter) sweepLocked(now time.Time) []heldReport {
	var out []heldReport
	for k, s := range l.mu.sources {
		if now.Sub(s.start) >= l.window {
			if s.held > 0 {
				out = append(out, heldReport{k, s.held, s.start})
			}
			delete(l.mu.sources, k)
		}
	}
	l.mu.nextSweep = max(1024, 2*len(l.mu.sources))
	return out
}

// sourceKey is the address a failure counts against: the IP, an IPv6 address's /64.
func sourceKey(a net.Addr) string {
	var ip net.IP
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		if a == nil {
			return ""
		}
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return ""
		}
		ip = net.ParseIP(host)
	}
	if ip == nil {
		return ""
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
