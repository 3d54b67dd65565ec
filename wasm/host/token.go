package host

import (
	"bytes"
	"hash/maphash"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/talowa/wedge/sdk/jsonscan"
	"github.com/talowa/wedge/sdk/jwt"
	"github.com/talowa/wedge/wasm/abi"
)

// Bounds of one plugin version's verified-token caches, in bytes of token,
// claims and bookkeeping.
const (
	// TokenCacheBytes holds tokens whose signature verified.
	TokenCacheBytes = 8 << 20
	// BadTokenCacheBytes holds tokens whose signature did not.
	BadTokenCacheBytes = 1 << 20
	// tokenEntryOverhead approximates an entry's memory beyond its bytes.
	tokenEntryOverhead = 160
	// maxTokenTTL bounds how long an outcome is remembered; an entry of a
	// token with exp leaves when the token expires (plus leeway), but stays
	// at least minTokenTTL so that replaying an expired token stays cheap.
	maxTokenTTL = time.Hour
	minTokenTTL = time.Minute
)

// tokenPolicy is one token_policy registration, resolved against the key
// ring. It never changes once registered.
type tokenPolicy struct {
	spec       []byte // the encoding, to deduplicate registrations
	id         int32
	keys       []policyKey
	issuer     []byte
	audiences  []string
	leeway     int64
	requireExp bool
	claims     [][]byte
	// forwards are the request values a valid token sets; their claim
	// names follow claims in want, so one walk of the payload finds both.
	forwards []tokenForward
	want     [][]byte
	cache    *tokenCache
}

// tokenForward is an abi.TokenForward with its claims as indexes into the
// policy's want.
type tokenForward struct {
	name   []byte
	claims []int
	value  []byte
}

type policyKey struct {
	k   *key
	kid []byte // empty matches any kid
}

// tokenScratch is token_verify's reusable parse state, one per Call: a
// cache miss then allocates only the entry it stores.
type tokenScratch struct {
	tok     jwt.Token
	it      jsonscan.Iter
	scratch []byte
	vals    [2 * abi.MaxTokenClaims][]byte // returned claims, then forwarded ones
}

// RegisterPolicy registers a token policy (abi.TokenPolicy encoding) whose
// keys are handles of this ring; it returns the policy handle or an Errno.
// The same spec registered again returns the same handle, as keys do.
func (k *Keyring) RegisterPolicy(spec []byte) int32 {
	if k == nil {
		return abi.ErrUnavailable
	}
	p, err := abi.ParseTokenPolicy(spec)
	if err != nil {
		return abi.ErrInvalid
	}
	keys := k.keys.all()
	tp := &tokenPolicy{
		spec: bytes.Clone(spec), leeway: int64(p.Leeway), requireExp: p.RequireExpiry,
		issuer: bytes.Clone(p.Issuer),
	}
	for _, pk := range p.Keys {
		if pk.Key < 0 || int(pk.Key) >= len(keys) {
			return abi.ErrNotFound
		}
		tp.keys = append(tp.keys, policyKey{k: keys[pk.Key], kid: bytes.Clone(pk.Kid)})
	}
	for _, a := range p.Audiences {
		tp.audiences = append(tp.audiences, string(a))
	}
	for _, c := range p.Claims {
		tp.claims = append(tp.claims, bytes.Clone(c))
	}
	tp.want = tp.claims[:len(tp.claims):len(tp.claims)]
	for _, f := range p.Forwards {
		tf := tokenForward{name: bytes.Clone(f.Name), value: bytes.Clone(f.Value)}
		for _, c := range f.Claims {
			tf.claims = append(tf.claims, len(tp.want))
			tp.want = append(tp.want, bytes.Clone(c))
		}
		tp.forwards = append(tp.forwards, tf)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	cur := k.policies.all()
	for i, have := range cur {
		if bytes.Equal(have.spec, spec) {
			return int32(i)
		}
	}
	if len(cur) >= abi.MaxTokenPolicies {
		return abi.ErrTooLarge
	}
	if k.tokens == nil {
		k.tokens = newTokenCache()
	}
	tp.id, tp.cache = int32(len(cur)), k.tokens
	return k.policies.add(tp)
}

// VerifyToken implements token_verify for policy handle h at Unix time now:
// it copies the verdict, then for a valid token the policy's claims, into
// buf and returns the full length, or an Errno.
//
// # Why
//
// A token seen before costs a seeded hash, a lookup, a comparison with the
// stored token and the time checks, which are redone on every call because
// the clock moves; whatever the algorithm, no signature is checked twice.
// The stored token is compared in full, so a hash collision can only make a
// miss, never admit a token that was not verified.
//
// Cache poisoning: only a token whose signature verified under the
// policy's keys enters the main cache, and only the issuer can mint those,
// so a client cannot flood it with tokens of its own making (base64url is
// decoded strictly, so a token has one encoding; ECDSA's malleability gives
// a holder one more valid variant of each token, not a flood). Forged tokens
// (bad signatures) go to a separate cache an eighth of its size: a flood of
// distinct forgeries churns only that one, costs the attacker a signature
// check per token as it would without a cache, and evicts no good token.
// Malformed tokens and unknown kids or algorithms are decided from the
// header alone, which costs less than remembering them, and are not cached.
// Both caches are bounded by weight (token and claim bytes), not count.
func (k *Keyring) VerifyToken(h int32, token, buf []byte, now int64, s *tokenScratch) int32 {
	p, errno := k.policy(h)
	if p == nil {
		return errno
	}
	n, _ := p.verify(token, buf, now, s)
	return n
}

// policy returns the policy with handle h, or the Errno of why not.
func (k *Keyring) policy(h int32) (*tokenPolicy, int32) {
	if k == nil {
		return nil, abi.ErrUnavailable
	}
	tp, ok := k.policies.get(h)
	if !ok {
		return nil, abi.ErrNotFound
	}
	return tp, 0
}

// verify is VerifyToken under p; it also returns the entry of a token
// found TokenValid, whose forwards the caller sets.
func (p *tokenPolicy) verify(token, buf []byte, now int64, s *tokenScratch) (int32, *tokenEntry) {
	if len(token) > abi.MaxTokenLen {
		return writeVerdict(buf, abi.TokenMalformed), nil
	}
	ck := p.key(token)
	if e, ok := p.cache.good.GetIfPresent(ck); ok && bytes.Equal(e.token, token) {
		return p.answer(e, buf, now)
	}
	if e, ok := p.cache.bad.GetIfPresent(ck); ok && bytes.Equal(e.token, token) {
		return writeVerdict(buf, abi.TokenBadSignature), nil
	}
	e, v := p.check(token, now, s)
	switch {
	case e != nil:
		p.cache.good.Set(ck, e)
		return p.answer(e, buf, now)
	case v == abi.TokenBadSignature:
		p.cache.bad.Set(ck, &tokenEntry{token: bytes.Clone(token), ttl: maxTokenTTL})
	}
	return writeVerdict(buf, v), nil
}

// writeVerdict writes a verdict alone, under the buffer + limit convention.
func writeVerdict(buf []byte, v abi.TokenVerdict) int32 {
	if len(buf) > 0 {
		buf[0] = byte(v)
	}
	return 1
}

// answer runs the time checks of e at now and writes the outcome; it
// returns e when the token is valid.
func (p *tokenPolicy) answer(e *tokenEntry, buf []byte, now int64) (int32, *tokenEntry) {
	v := e.pre
	if v == abi.TokenValid {
		switch {
		case !e.hasExp && p.requireExp:
			v = abi.TokenNoExpiry
		case e.hasExp && now-p.leeway >= e.exp: // e.exp+leeway may overflow
			v = abi.TokenExpired
		case e.hasNbf && now+p.leeway < e.nbf:
			v = abi.TokenNotYetValid
		case e.hasIat && now+p.leeway < e.iat:
			v = abi.TokenIssuedLater
		default:
			v = e.post
		}
	}
	if v != abi.TokenValid {
		return writeVerdict(buf, v), nil
	}
	return copyOut(buf, e.out), e
}

// check verifies token without the cache. It returns the entry to remember
// once the signature verified, else the verdict.
func (p *tokenPolicy) check(token []byte, now int64, s *tokenScratch) (*tokenEntry, abi.TokenVerdict) {
	t := &s.tok
	if t.Parse(token) != nil {
		return nil, abi.TokenMalformed
	}
	if t.Alg == 0 {
		return nil, abi.TokenAlgNotAccepted // "none", or an algorithm no key has
	}
	// Keys are bound to one algorithm at key_register: the header's alg
	// only picks among them, so HS256 over an RSA key has no key to pass.
	tried, kidKnown := false, false
	for _, pk := range p.keys {
		if len(pk.kid) > 0 && len(t.Kid) > 0 && !bytes.Equal(pk.kid, t.Kid) {
			continue
		}
		kidKnown = true
		if pk.k.alg != t.Alg {
			continue
		}
		tried = true
		var ok bool
		if ok, s.scratch = pk.k.check(t.SigningInput, t.Signature, s.scratch); ok {
			return p.entry(token, now, s), abi.TokenValid
		}
	}
	switch {
	case tried:
		return nil, abi.TokenBadSignature
	case !kidKnown:
		return nil, abi.TokenUnknownKid
	}
	return nil, abi.TokenAlgNotAccepted
}

// check verifies sig over msg with kk, natively and without the
// per-signature cache: the token cache remembers more than it would.
func (kk *key) check(msg, sig, scratch []byte) (bool, []byte) {
	if kk.pub == nil {
		r, scratch := kk.verifyHMAC(msg, sig, scratch)
		return r == 1, scratch
	}
	return kk.verifyPublic(msg, sig), scratch
}

// entry reads the claims of the verified token in s.tok into a new entry.
func (p *tokenPolicy) entry(token []byte, now int64, s *tokenScratch) *tokenEntry {
	t := &s.tok
	e := &tokenEntry{token: bytes.Clone(token), ttl: maxTokenTTL}
	c, err := t.Claims()
	if err != nil {
		e.pre = abi.TokenMalformedClaims
		return e
	}
	e.exp, e.nbf, e.iat = c.Expiry, c.NotBefore, c.IssuedAt
	e.hasExp, e.hasNbf, e.hasIat = c.HasExpiry, c.HasNotBefore, c.HasIssuedAt
	if e.hasExp {
		left := time.Duration(min(max(e.exp+p.leeway-now, 0), int64(maxTokenTTL/time.Second))) * time.Second
		e.ttl = max(left, minTokenTTL)
	}
	// One walk finds every requested claim; the last of repeated members
	// wins, as it does for the registered claims above.
	vals := s.vals[:len(p.want)]
	clear(vals)
	for s.it.Object(t.Payload); s.it.Next(); {
		name := s.it.Name()
		for i, want := range p.want {
			if bytes.Equal(name, want) {
				vals[i] = s.it.Value()
			}
		}
	}
	switch {
	case len(p.issuer) > 0 && !bytes.Equal(c.Issuer, p.issuer):
		e.post = abi.TokenWrongIssuer
	case len(p.audiences) > 0 && !hasAudience(&c, p.audiences):
		e.post = abi.TokenWrongAudience
	default:
		e.post = p.forwardTexts(e, vals)
	}
	// Claims walked the same payload without error, and validated JSON
	// holds no NUL, so every value fits in a list.
	e.out = append(e.out, abi.TokenValid)
	for _, v := range vals[:len(p.claims)] {
		e.out = abi.AppendList(e.out, v)
	}
	return e
}

// forwardTexts works out, once per verified token, the text of each
// forward into e, and returns the verdict: TokenValid, or why the claims
// cannot be forwarded. vals are the raw values of p.want.
//
// # Why
//
// Every type is checked before any text is: a guest that did this itself
// refused a claim of the wrong type before looking at what the others
// hold, and the verdict says the same.
func (p *tokenPolicy) forwardTexts(e *tokenEntry, vals [][]byte) abi.TokenVerdict {
	if len(p.forwards) == 0 {
		return abi.TokenValid
	}
	ends := make([]int, len(p.forwards))
	for i, f := range p.forwards {
		raw := []byte(nil)
		for _, c := range f.claims {
			if raw = vals[c]; len(raw) > 0 {
				break
			}
		}
		if len(raw) == 0 {
			e.fwdText = append(e.fwdText, f.value...)
		} else {
			var err error
			if e.fwdText, err = appendClaimText(e.fwdText, raw); err != nil {
				e.fwdText = nil
				return abi.TokenClaimNotText
			}
		}
		ends[i] = len(e.fwdText)
	}
	if !abi.ValidHeaderValue(e.fwdText) {
		e.fwdText = nil
		return abi.TokenClaimNotValue
	}
	e.fwd = make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		e.fwd[i] = e.fwdText[start:end:end]
		start = end
	}
	return abi.TokenValid
}

// appendClaimText appends the text of a claim's raw JSON value to dst: a
// string unescaped, an array of strings joined with spaces (a separator
// only once the text is not empty); anything else is an error.
func appendClaimText(dst, raw []byte) ([]byte, error) {
	if raw[0] != '[' {
		return jsonscan.AppendString(dst, raw)
	}
	start := len(dst)
	var it jsonscan.Iter
	var err error
	for it.Array(raw); it.Next() && err == nil; {
		if len(dst) > start {
			dst = append(dst, ' ')
		}
		dst, err = jsonscan.AppendString(dst, it.Value())
	}
	if err == nil {
		err = it.Err()
	}
	return dst, err
}

func hasAudience(c *jwt.Claims, auds []string) bool {
	for _, a := range auds {
		if c.HasAudience(a) {
			return true
		}
	}
	return false
}

// tokenEntry is what a verified token's cache entry remembers: everything
// but the time checks, which depend on the clock.
type tokenEntry struct {
	token []byte // the whole token: a hash match alone admits nothing
	// pre is the verdict of the checks before the time checks (TokenValid
	// or TokenMalformedClaims), post that of the checks after them.
	pre, post              abi.TokenVerdict
	hasExp, hasNbf, hasIat bool
	exp, nbf, iat          int64
	out                    []byte // TokenValid then the claims list
	// fwd is the text of each of the policy's forwards (empty: nothing to
	// set), views of fwdText.
	fwd     [][]byte
	fwdText []byte
	ttl     time.Duration
}

type tokenKey struct {
	policy int32
	h      uint64
}

func (p *tokenPolicy) key(token []byte) tokenKey {
	return tokenKey{policy: p.id, h: maphash.Bytes(p.cache.seed, token)}
}

// tokenCache is one plugin version's verified-token caches, shared by its
// policies (entries are keyed by policy).
type tokenCache struct {
	seed      maphash.Seed // per cache: collisions cannot be aimed
	good, bad *otter.Cache[tokenKey, *tokenEntry]
}

func newTokenCache() *tokenCache {
	opts := func(bytes int) *otter.Options[tokenKey, *tokenEntry] {
		return &otter.Options[tokenKey, *tokenEntry]{
			MaximumWeight: uint64(bytes),
			Weigher: func(_ tokenKey, e *tokenEntry) uint32 {
				return uint32(len(e.token) + len(e.out) + len(e.fwdText) + 24*len(e.fwd) + tokenEntryOverhead)
			},
			ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[tokenKey, *tokenEntry]) time.Duration {
				return e.Value.ttl
			}),
			// Maintenance on the caller's goroutine: the default executor
			// starts a goroutine whenever a read buffer fills, and with a
			// hot token that spawn and the wake-up of an idle P cost more
			// CPU per admitted request than the guest's own code. The
			// caches have no OnDeletion handler and no Compute, so running
			// maintenance under their locks cannot deadlock.
			Executor: func(fn func()) { fn() },
		}
	}
	return &tokenCache{
		seed: maphash.MakeSeed(),
		good: otter.Must(opts(TokenCacheBytes)),
		bad:  otter.Must(opts(BadTokenCacheBytes)),
	}
}

// TokenPolicy implements abi.Host.
func (c *Call) TokenPolicy(spec []byte) int32 {
	if c.phase != abi.PhaseConfigure {
		return abi.ErrPhase
	}
	return c.env.Keys.RegisterPolicy(spec)
}

// TokenVerify implements abi.Host. A valid token under a policy with
// forwards sets them as request values, as value_set with ValueForward
// would, so only where value_set may: elsewhere such a policy is ErrPhase.
func (c *Call) TokenVerify(policy int32, token []byte, buf []byte) int32 {
	p, errno := c.env.Keys.policy(policy)
	if p == nil {
		return errno
	}
	if len(p.forwards) > 0 && !c.inExchange() {
		return abi.ErrPhase
	}
	n, e := p.verify(token, buf, c.env.now().Unix(), &c.tokens)
	if e == nil {
		return n
	}
	// Names and literal values were checked at registration and claim texts
	// when the token was verified: nothing here can be a bad header.
	for i, f := range p.forwards {
		if len(e.fwd[i]) == 0 {
			continue
		}
		if r := c.ex.Values().Set(f.name, e.fwd[i], abi.ValueForward); r != 0 {
			return r
		}
	}
	return n
}
