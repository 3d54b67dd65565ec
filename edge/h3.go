package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// HTTP3Config is HTTP/3 (QUIC) on the TLS listener's port over UDP
// (tls.http3 in the config). Header size, request body size, the number of
// connections (max_conns, counted apart from TCP's) and the idle, read and
// write timeouts are the limits HTTP/1.1 has (Limits), as over HTTP/2
// (HTTP2Config).
type HTTP3Config struct {
	// Enabled serves HTTP/3 and advertises it on TLS responses (Alt-Svc).
	Enabled bool `yaml:"enabled"`
	// MaxConcurrentStreams bounds the requests one connection has in
	// progress (QUIC's bidirectional stream limit). Default 100.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// MaxResets closes a connection whose client reset more than this many
	// streams before their answers, and more than half of the streams it
	// opened. Default 100.
	MaxResets int `yaml:"max_resets"`
	// AltSvcMaxAge is how long a client may remember the advertisement
	// (Alt-Svc's ma). Default 24h.
	AltSvcMaxAge Duration `yaml:"alt_svc_max_age"`
}

func (c *HTTP3Config) setDefaults() {
	if c.MaxConcurrentStreams <= 0 {
		c.MaxConcurrentStreams = 100
	}
	if c.MaxResets <= 0 {
		c.MaxResets = 100
	}
	if c.AltSvcMaxAge <= 0 {
		c.AltSvcMaxAge = Duration(24 * time.Hour)
	}
}

// serveH3 serves HTTP/3 on the UDP port of addr, the TLS listener's, until
// Shutdown, and advertises it.
func (n *Node) serveH3(addr net.Addr) error {
	udp, err := net.ListenPacket("udp", addr.String())
	if err != nil {
		return fmt.Errorf("edge: http/3: %w", err)
	}
	lim, c := n.cfg.Limits, n.cfg.TLS.HTTP3
	door := newFrontDoor(n, "HTTP/3.0", "h3", c.MaxResets)
	door.readTimeout = time.Duration(lim.ReadTimeout)
	srv := &http3.Server{
		Handler:   door,
		TLSConfig: n.tlsConfig(),
		QUICConfig: &quic.Config{
			MaxIncomingStreams:   int64(c.MaxConcurrentStreams),
			MaxIdleTimeout:       time.Duration(lim.IdleTimeout),
			HandshakeIdleTimeout: time.Duration(lim.ReadTimeout),
		},
		MaxHeaderBytes: lim.MaxHeaderBytes,
		IdleTimeout:    time.Duration(lim.IdleTimeout),
		Logger:         n.log,
		ConnContext: func(ctx context.Context, qc *quic.Conn) context.Context {
			// max_conns bounds QUIC connections as fasthttp bounds TCP
			// ones, apart from them.
			d := &n.doors
			context.AfterFunc(qc.Context(), func() { d.h3conns.Add(-1) })
			if d.h3conns.Add(1) > int64(lim.MaxConns) {
				qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many connections")
			}
			p := &peer{remote: qc.RemoteAddr(), local: qc.LocalAddr(), state: qc.ConnectionState().TLS,
				end: func() {
					qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many early resets")
				}}
			return context.WithValue(ctx, peerKey{}, p)
		},
	}
	d := &n.doors
	d.mu.Lock()
	if d.shut {
		d.mu.Unlock()
		udp.Close()
		return nil
	}
	d.h3 = append(d.h3, srv)
	d.udp = append(d.udp, udp)
	d.mu.Unlock()
	port := udp.LocalAddr().(*net.UDPAddr).Port
	altSvc := fmt.Sprintf(`h3=":%d"; ma=%d`, port, int(time.Duration(c.AltSvcMaxAge).Seconds()))
	d.altSvc.Store(&altSvc)
	go func() {
		if err := srv.Serve(udp); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			n.log.Error("edge: http/3 stopped", "err", err)
		}
	}()
	return nil
}
