// Command rewrite replaces the prefix of the request's path its config
// names, {"from": "/pub/", "to": "/internal/"}, and lets the request
// through: a step after the cache that sends the request on under another
// path, for the edge's regional cache tier tests (the key's owner must
// run the asker's route, not the one the new path matches).
package main

import (
	"errors"
	"strings"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
)

type rewrite struct{ from, to string }

func (r *rewrite) Configure(cfg []byte) error {
	for _, f := range []struct {
		key string
		dst *string
	}{{"from", &r.from}, {"to", &r.to}} {
		v, ok, err := jsonscan.Member(cfg, f.key)
		if err != nil || !ok {
			return errors.New(`rewrite: config must be {"from": ..., "to": ...}`)
		}
		if *f.dst, err = jsonscan.String(v); err != nil || !strings.HasPrefix(*f.dst, "/") {
			return errors.New("rewrite: " + f.key + " must be a path")
		}
	}
	return nil
}

func (r *rewrite) OnRequest(req sdk.Request, _ sdk.Response) sdk.Action {
	if rest, ok := strings.CutPrefix(req.Path(), r.from); ok {
		if err := req.SetPath(r.to + rest); err != nil {
			return sdk.Fail(err)
		}
	}
	return sdk.Continue
}

func (*rewrite) OnResponse(sdk.Request, sdk.Response) sdk.Action { return sdk.Continue }

func init() { sdk.Register(&rewrite{}) }

func main() {}
