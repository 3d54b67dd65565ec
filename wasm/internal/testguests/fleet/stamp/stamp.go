// Package stamp is the body of the fleet tests' plugin versions: each
// version is its own main package (so its own binary and digest) that
// registers a Stamp with a behaviour.
package stamp

import (
	"encoding/json"
	"unsafe"

	"github.com/talowa/wedge/sdk"
)

// Behaviour is what a version does to the requests it sees.
type Behaviour int

const (
	// Good lets requests through and stamps responses with its version.
	Good Behaviour = iota
	// Fail500 answers every request with a 500, as a bad release would.
	Fail500
	// Trap traps on every request: a load far outside linear memory.
	Trap
)

// Stamp is a plugin version.
type Stamp struct {
	Version string
	Do      Behaviour
}

var anchor byte

// Configure takes {"do":"fail500"} to answer every request with a 500
// whatever the version, as a config-only release that breaks it would;
// any other config keeps the version's behaviour.
func (s *Stamp) Configure(config []byte) error {
	var c struct {
		Do string `json:"do"`
	}
	if json.Unmarshal(config, &c) == nil && c.Do == "fail500" {
		s.Do = Fail500
	}
	return nil
}

// OnRequest fails as the version's behaviour says, or lets the request
// through.
func (s *Stamp) OnRequest(_ sdk.Request, resp sdk.Response) sdk.Action {
	switch s.Do {
	case Fail500:
		return resp.AnswerText(500, "stamp "+s.Version+" is broken\n")
	case Trap:
		p := (*byte)(unsafe.Add(unsafe.Pointer(&anchor), 1<<31))
		anchor = *p
	}
	return sdk.Continue
}

// OnResponse names the version on the response.
func (s *Stamp) OnResponse(_ sdk.Request, resp sdk.Response) sdk.Action {
	if err := resp.Header().Set("X-Stamp", s.Version); err != nil {
		return sdk.Fail(err)
	}
	return sdk.Continue
}
