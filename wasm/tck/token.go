package tck

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

// hs256Key is the kit's HS256 key (raw format), for the token checks.
func (p *Plugin) hs256Key() (regKey, bool) {
	for _, k := range p.keys {
		if strings.HasPrefix(k.name, "HS256/") && k.format == abi.KeyRaw {
			return k, true
		}
	}
	return regKey{}, false
}

// configureTokens registers the kit's token policy: the HS256 key, exp
// required, sub asked back.
func (p *Plugin) configureTokens() {
	p.policy = -1
	k, ok := p.hs256Key()
	if !ok {
		p.check("token_policy", "config has a raw HS256 key", false)
		return
	}
	pol := abi.TokenPolicy{Keys: []abi.TokenKey{{Key: k.handle}}, RequireExpiry: true, Claims: [][]byte{b("sub")}}
	spec := pol.Append(nil)
	p.policy = hostcall.TokenPolicy(spec)
	p.check("token_policy", "registers a policy", p.policy >= 0, "got ", p.policy)
	p.eq("token_policy", "the same spec again gets the same handle", hostcall.TokenPolicy(spec), p.policy)
	p.errno("token_policy", "truncated spec", hostcall.TokenPolicy(spec[:len(spec)-1]), abi.ErrInvalid)
	unknown := abi.TokenPolicy{Keys: []abi.TokenKey{{Key: 999}}}
	p.errno("token_policy", "unknown key handle", hostcall.TokenPolicy(unknown.Append(nil)), abi.ErrNotFound)
}

// tokens checks token_verify in the request phase, with HS256 tokens the kit
// signs itself against the host clock.
func (p *Plugin) tokens() {
	p.errno("token_policy", "in request", hostcall.TokenPolicy((&abi.TokenPolicy{}).Append(nil)), abi.ErrPhase)
	p.errno("token_verify", "unknown policy", hostcall.TokenVerify(999, b("a.b.c"), nil), abi.ErrNotFound)
	k, ok := p.hs256Key()
	if !ok || p.policy < 0 {
		p.check("token_verify", "has a policy", false)
		return
	}
	now := hostcall.TimeNow() / 1e9
	sign := func(payload string) []byte {
		enc := base64.RawURLEncoding.EncodeToString
		in := enc(b(`{"alg":"HS256"}`)) + "." + enc(b(payload))
		m := hmac.New(sha256.New, k.key)
		m.Write(b(in))
		return b(in + "." + enc(m.Sum(nil)))
	}
	good := sign(`{"sub":"alice","exp":` + strconv.FormatInt(now+600, 10) + `}`)
	want := "\x00\"alice\"\x00"
	p.eq("token_verify", "probe returns the full length", hostcall.TokenVerify(p.policy, good, nil), int32(len(want)))
	got, _ := read(64, func(buf []byte) int32 { return hostcall.TokenVerify(p.policy, good, buf) })
	p.eqBytes("token_verify", "valid token: TokenValid and the sub claim", got, want)
	got, _ = read(64, func(buf []byte) int32 { return hostcall.TokenVerify(p.policy, good, buf) })
	p.eqBytes("token_verify", "valid again, from the cache", got, want)
	verdict := func(what string, tok []byte, v abi.TokenVerdict) {
		got, n := read(64, func(buf []byte) int32 { return hostcall.TokenVerify(p.policy, tok, buf) })
		p.check("token_verify", what+" -> "+abi.TokenVerdictName(v), n == 1 && got[0] == v, "got ", got)
	}
	// Swap a signature character for another base64url letter: flipping a
	// bit could make it '-' or '_' into an invalid character (Malformed),
	// depending on the signed time.
	bad := append([]byte(nil), good...)
	if bad[len(bad)-2] == 'A' {
		bad[len(bad)-2] = 'B'
	} else {
		bad[len(bad)-2] = 'A'
	}
	verdict("tampered signature", bad, abi.TokenBadSignature)
	verdict("expired", sign(`{"sub":"alice","exp":`+strconv.FormatInt(now-10, 10)+`}`), abi.TokenExpired)
	verdict("no exp", sign(`{"sub":"alice"}`), abi.TokenNoExpiry)
	verdict("two segments", b("a.b"), abi.TokenMalformed)
}
