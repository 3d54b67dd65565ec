package main

// The RFC suite (policy_test.go, fuzz_test.go, bench_test.go) was written
// against the policy when it lived in this package under unexported names.
// The policy is package httpcache now, shared with the host, which runs
// the request phase with it; these are the suite's names for it, so the
// suite runs unchanged against the code the plugin and the host use.

import (
	"time"

	"github.com/talowa/wedge/wasm/abi/httpcache"
)

const (
	absent      = httpcache.Absent
	maxDelta    = httpcache.MaxDelta
	maxLifetime = httpcache.MaxLifetime

	okStore         = httpcache.OKStore
	whyMethod       = httpcache.WhyMethod
	whyStatus       = httpcache.WhyStatus
	whyNoStore      = httpcache.WhyNoStore
	whyPrivate      = httpcache.WhyPrivate
	whyAuth         = httpcache.WhyAuth
	whyNoFreshness  = httpcache.WhyNoFreshness
	whyVaryStar     = httpcache.WhyVaryStar
	whyReqNoStore   = httpcache.WhyReqNoStore
	whyNotUseful    = httpcache.WhyNotUseful
	whyPartialCache = httpcache.WhyPartialCache
	whySetCookie    = httpcache.WhySetCookie

	useFresh      = httpcache.UseFresh
	useStale      = httpcache.UseStale
	useStaleSWR   = httpcache.UseStaleSWR
	validate      = httpcache.Validate
	validateByReq = httpcache.ValidateByReq

	modeHit     = httpcache.ModeHit
	modeForward = httpcache.ModeForward
	modeUnsafe  = httpcache.ModeUnsafe
	modeBypass  = httpcache.ModeBypass
	modeAnswer  = httpcache.ModeAnswer
)

type decision = httpcache.Decision

type cacheStatus = httpcache.CacheStatus

// directives mirrors httpcache.Directives.
type directives struct {
	noStore, noCache, private, public   bool
	mustRevalidate, proxyRevalidate     bool
	mustUnderstand, onlyIfCached        bool
	maxStaleAny                         bool
	maxAge, sMaxAge, maxStale, minFresh int64
	swr, sie                            int64
	noCacheFields, privateFields        []string
}

func fromDirectives(d httpcache.Directives) directives {
	return directives{d.NoStore, d.NoCache, d.Private, d.Public, d.MustRevalidate, d.ProxyRevalidate,
		d.MustUnderstand, d.OnlyIfCached, d.MaxStaleAny, d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh,
		d.SWR, d.SIE, d.NoCacheFields, d.PrivateFields}
}

func (d directives) shared() httpcache.Directives {
	return httpcache.Directives{NoStore: d.noStore, NoCache: d.noCache, Private: d.private, Public: d.public,
		MustRevalidate: d.mustRevalidate, ProxyRevalidate: d.proxyRevalidate, MustUnderstand: d.mustUnderstand,
		OnlyIfCached: d.onlyIfCached, MaxStaleAny: d.maxStaleAny, MaxAge: d.maxAge, SMaxAge: d.sMaxAge,
		MaxStale: d.maxStale, MinFresh: d.minFresh, SWR: d.swr, SIE: d.sie,
		NoCacheFields: d.noCacheFields, PrivateFields: d.privateFields}
}

func (d directives) String() string { return d.shared().String() }

func parseCacheControl(lines []string, response bool) directives {
	return fromDirectives(httpcache.ParseCacheControl(lines, response))
}

func parseTargeted(lines []string) (directives, bool) {
	d, ok := httpcache.ParseTargeted(lines)
	return fromDirectives(d), ok
}

// responsePolicy is an httpcache.ResponsePolicy with the fields the suite reads.
type responsePolicy struct {
	cc       directives
	targeted string
	p        httpcache.ResponsePolicy
}

func policyOf(p httpcache.ResponsePolicy) responsePolicy {
	return responsePolicy{fromDirectives(p.CC), p.Targeted, p}
}

func readResponse(h httpcache.Headers) responsePolicy { return policyOf(httpcache.ReadResponse(h)) }
func readPolicy(h httpcache.Headers) responsePolicy   { return policyOf(httpcache.ReadPolicy(h)) }

func storable(method string, status int, req directives, p responsePolicy, hasAuth, varyStar bool) string {
	return httpcache.Storable(method, status, req.shared(), p.p, hasAuth, varyStar)
}

func freshness(p responsePolicy, status int, responseTime time.Time, pct int, heurMax time.Duration) (time.Duration, bool) {
	return httpcache.Freshness(p.p, status, responseTime, pct, heurMax)
}

func initialAge(p responsePolicy, requestTime, responseTime time.Time) time.Duration {
	return httpcache.InitialAge(p.p, requestTime, responseTime)
}

// meta mirrors httpcache.Meta.
type meta struct {
	initialAge, lifetime                   int64
	noCache, mustRevalidate                bool
	swr, sie                               int64
	etag, lastMod, varyNames, variant, gen string
}

func (m *meta) shared() httpcache.Meta {
	return httpcache.Meta{InitialAge: m.initialAge, Lifetime: m.lifetime, NoCache: m.noCache,
		MustRevalidate: m.mustRevalidate, SWR: m.swr, SIE: m.sie, ETag: m.etag, LastMod: m.lastMod,
		VaryNames: m.varyNames, Variant: m.variant, Gen: m.gen}
}

func (m *meta) encode() []byte { s := m.shared(); return s.Encode() }

func decodeMeta(b []byte) (meta, bool) {
	m, ok := httpcache.DecodeMeta(b)
	return meta{m.InitialAge, m.Lifetime, m.NoCache, m.MustRevalidate, m.SWR, m.SIE,
		m.ETag, m.LastMod, m.VaryNames, m.Variant, m.Gen}, ok
}

func reuse(m *meta, age time.Duration, rq directives) decision {
	s := m.shared()
	return httpcache.Reuse(&s, age, rq.shared())
}

func staleIfError(m *meta, age time.Duration, reqSIE int64, status int) bool {
	s := m.shared()
	return httpcache.StaleIfError(&s, age, reqSIE, status)
}

// state mirrors httpcache.State.
type state struct {
	mode                                 byte
	fwd                                  string
	noStore, clientCond                  bool
	reqTime, reqSIE                      int64
	entryKey                             string
	primary                              bool
	primaryNames, primaryVar, primaryGen string
}

func (s *state) encode() string {
	st := httpcache.State{Mode: s.mode, Fwd: s.fwd, NoStore: s.noStore, ClientCond: s.clientCond,
		ReqTime: s.reqTime, ReqSIE: s.reqSIE, EntryKey: s.entryKey, Primary: s.primary,
		PrimaryNames: s.primaryNames, PrimaryVar: s.primaryVar, PrimaryGen: s.primaryGen}
	return st.Encode()
}

func decodeState(v string) (state, bool) {
	s, ok := httpcache.DecodeState(v)
	return state{s.Mode, s.Fwd, s.NoStore, s.ClientCond, s.ReqTime, s.ReqSIE, s.EntryKey, s.Primary,
		s.PrimaryNames, s.PrimaryVar, s.PrimaryGen}, ok
}

var (
	varyNames     = httpcache.VaryNames
	tags          = httpcache.Tags
	sameOriginKey = httpcache.SameOriginKey
	cacheKey      = httpcache.Key
	ttlSeconds    = httpcache.TTLSeconds
	parseHTTPDate = httpcache.ParseHTTPDate
	twoDigitYear  = httpcache.TwoDigitYear
	skipOnUpdate  = httpcache.SkipOnUpdate
	rangeAllowed  = httpcache.RangeAllowed
	notModified   = httpcache.NotModified
	invalidates   = httpcache.Invalidates
	keepOn304     = httpcache.KeepOn304
)

func variant(names string, req httpcache.Headers) string { return httpcache.Variant(names, req) }
