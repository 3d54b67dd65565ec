package edge

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/talowa/wedge/edge/originclient"
	"github.com/talowa/wedge/origin/wire"
	"github.com/talowa/wedge/wasm/abi"
	"github.com/talowa/wedge/wasm/host"
)

// origin is one origin service as the routes see it.
type origin struct {
	name    string
	client  *originclient.Client
	codec   *wire.Codec
	timeout time.Duration
}

func newOrigin(name string, cfg *OriginConfig, m *originclient.Metrics) (*origin, error) {
	codec, err := wire.NewCodec(wire.Config{Keys: []wire.Key{cfg.key}, Dicts: cfg.dicts, Dict: cfg.Dict})
	if err != nil {
		return nil, fmt.Errorf("edge: origin %s: %w", name, err)
	}
	c, err := originclient.New(originclient.Config{Addr: cfg.Addr, Codec: codec, Name: name, Metrics: m,
		Timeout: time.Duration(cfg.Timeout)})
	if err != nil {
		codec.Close()
		return nil, fmt.Errorf("edge: origin %s: %w", name, err)
	}
	return &origin{name: name, client: c, codec: codec, timeout: time.Duration(cfg.Timeout)}, nil
}

func (o *origin) close() {
	o.client.Close()
	o.codec.Close()
}

// exchange sends the request as the chain left it and puts the answer, or
// the failure, into resp.
func (o *origin) exchange(n *Node, req *host.Request, vals *host.Values, wreq *wire.Request, wresp *wire.Response, resp *host.Response) {
	toWire(n, req, vals, wreq)
	err := o.client.Do(time.Now().Add(o.timeout), wreq, wresp)
	if err != nil {
		// The error names internal addresses: it goes to the log, and the
		// client gets the status.
		status := originclient.Status(err)
		n.log.Warn("origin failed", "origin", o.name, "status", status, "err", err)
		*resp = host.Response{Status: status, Header: host.Header{Fields: resp.Header.Fields[:0]},
			Body: fmt.Appendf(nil, "%d %s: origin %s\n", status, http.StatusText(status), o.name)}
		resp.Header.Add("Content-Type", "text/plain; charset=utf-8")
		return
	}
	resp.Status = int(wresp.Status)
	resp.Header.Fields = resp.Header.Fields[:0]
	for _, f := range wresp.Header {
		resp.Header.Add(string(f.Name), string(f.Value))
	}
	// The response takes the envelope's body rather than a copy of it; the
	// next decode into wresp grows a new one. A body may outlive the
	// request in the cache, so it is never written into again.
	resp.Body, wresp.Body = wresp.Body, nil
}

// toWire fills an envelope from the request as the chain left it, with
// the values plugins marked for forwarding.
func toWire(n *Node, req *host.Request, vals *host.Values, w *wire.Request) {
	w.Reset()
	w.ID = append(w.ID, req.ID...)
	w.Method = append(w.Method, req.Method...)
	w.Scheme = append(w.Scheme, req.Scheme...)
	w.Host = append(w.Host, req.Host...)
	w.Path = append(w.Path, req.Path...)
	w.Query = append(w.Query, req.RawQuery...)
	for _, f := range req.Header.Fields {
		if hopByHop(f.Name) {
			continue
		}
		w.AddHeader([]byte(f.Name), []byte(f.Value))
	}
	w.Body = append(w.Body, req.Body...)
	if ip, _, err := net.SplitHostPort(req.ClientAddr); err == nil {
		w.Client = append(w.Client, ip...)
	}
	w.POP = append(w.POP, n.cfg.POP...)
	w.Region = append(w.Region, n.cfg.Region...)
	for i := range vals.Len() {
		k, v, flags := vals.At(i)
		if flags&abi.ValueForward != 0 {
			w.AddValue(k, v)
		}
	}
}
