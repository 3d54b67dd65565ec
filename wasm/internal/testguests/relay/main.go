// Command relay sets the request header its config names,
// {"name": "...", "value": "..."}, and lets the request through (with no
// config it sets nothing): a plugin whose output a later plugin acts on,
// for the edge's health attribution tests (a canary that breaks what it
// passes on).
package main

import (
	"errors"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/jsonscan"
)

type relay struct{ name, value string }

func (r *relay) Configure(cfg []byte) error {
	r.name, r.value = "", ""
	if len(cfg) == 0 {
		return nil
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"name", &r.name}, {"value", &r.value}} {
		v, ok, err := jsonscan.Member(cfg, f.key)
		if err != nil || !ok {
			return errors.New("relay: config must be {\"name\": ..., \"value\": ...}")
		}
		if *f.dst, err = jsonscan.String(v); err != nil {
			return errors.New("relay: " + f.key + " must be a string")
		}
	}
	return nil
}

func (r *relay) OnRequest(req sdk.Request, _ sdk.Response) sdk.Action {
	if r.name == "" {
		return sdk.Continue
	}
	if err := req.Header().Set(r.name, r.value); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}

func (*relay) OnResponse(sdk.Request, sdk.Response) sdk.Action { return sdk.Continue }

func init() { sdk.Register(&relay{}) }

func main() {}
