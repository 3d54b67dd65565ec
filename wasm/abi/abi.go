// Package abi defines ABI v1, the contract between the Wedge host and a Wasm
// plugin. README.md in this directory is the normative, human-readable spec;
// this package is the same contract in code, and every other piece of Wedge
// (the wazero host in package wasm, the Go guest SDK, the conformance kit, the
// spec test) takes names, signatures and constants from here.
//
// The host functions are described once, in [Funcs]. The guest bindings
// (sdk/hostcall), the guest exports (sdk), the host adapters (package wasm)
// and the [Host] interface are generated from this package by
// ./internal/abigen (run `go generate ./wasm/abi`); a test fails when a
// generated file is stale.
//
// Conventions, in short (README.md has the long form):
//
//   - Every host function lives in import module [HostModule] and returns one
//     value. A negative i32 result is an [Errno].
//   - A byte argument is a (ptr, len) pair of i32 in the guest's linear memory.
//     A range outside linear memory traps the call; a zero length is valid with
//     any pointer.
//   - Output buffers follow "buffer + limit, returns the full length": the host
//     copies min(len, limit) bytes and returns the full length, so a guest
//     passing limit 0 probes the size.
//   - Lists (header values, header names, tags, log attributes) are items each
//     followed by one NUL byte; see [AppendList] and [NextItem].
//
// This package imports nothing outside the standard library so that the guest
// SDK, which compiles to GOOS=wasip1, can import it.
package abi

import "strconv"

// Version is the ABI version this package describes.
const Version = 1

// HostModule is the import module name of every host function.
const HostModule = "wedge"

// Guest exports. A plugin exports all four; the host refuses a module that
// lacks one or exports one with the wrong signature.
const (
	// ExportVersionMarker is a function () -> () that is never called. Its name
	// carries the ABI version, so the host knows which contract a module speaks
	// without instantiating it.
	ExportVersionMarker = "wedge_abi_v1"
	// ExportConfigure is () -> i32, called once per instance before any request.
	// It returns a non-negative [Feature] mask on success, a negative value on
	// failure (with a message set through error_set).
	ExportConfigure = "wedge_configure"
	// ExportOnRequest is () -> i32, the request phase. It returns an [Action].
	ExportOnRequest = "wedge_on_request"
	// ExportOnResponse is () -> i32, the response phase. It returns an [Action]
	// ([ActionContinue] or [ActionFail]).
	ExportOnResponse = "wedge_on_response"
	// ExportPrefix is reserved: a guest exports no other name starting with it.
	ExportPrefix = "wedge_"
)

// HostYield is a host function () -> () in HostModule that is not part of
// the guest-callable ABI: the runtime's instrumentation calls it from guest
// loops to enforce call deadlines. A guest that imports it is refused.
const HostYield = "yield"

// Feature is the mask wedge_configure returns: which phases the host calls.
type Feature = int32

// Features: the phases a plugin asks the host to call.
const (
	FeatureRequest  Feature = 1 << 0 // call wedge_on_request
	FeatureResponse Feature = 1 << 1 // call wedge_on_response
)

// Action is what a phase handler returns.
type Action = int32

const (
	// ActionContinue passes the request on: to the next plugin, then the origin.
	ActionContinue Action = 0
	// ActionAnswer (request phase only) stops the chain and sends the response
	// the plugin built (status_set, header_* on MsgResponse, body_set or
	// cache_serve).
	ActionAnswer Action = 1
	// ActionFail reports a plugin failure (message via error_set); the host
	// applies the plugin's failure policy. Any other value is treated the same.
	ActionFail Action = 2
)

// BadAction says why act is no valid result of a call of phase, or ""
// when it is one: for the failure a host reports, so that a plugin author
// learns what the guest did wrong.
func BadAction(phase Phase, act Action) string {
	switch {
	case act == ActionContinue, act == ActionFail, act == ActionAnswer && phase == PhaseRequest:
		return ""
	case act == ActionAnswer:
		return "Answer from the " + PhaseName(phase) + " phase: only the request phase answers (set the status and body, then Continue)"
	}
	return "action " + strconv.Itoa(int(act)) + " is none of Continue, Answer and Fail"
}

// Errno is a negative host function result.
type Errno = int32

const (
	// ErrNotFound: no such header, value, cache entry, key or metric.
	ErrNotFound Errno = -1
	// ErrInvalid: an argument is malformed (unknown enum, bad header name or
	// value, status out of range, unusable key material).
	ErrInvalid Errno = -2
	// ErrPhase: the function or message is not available in the current phase.
	ErrPhase Errno = -3
	// ErrTooLarge: a size or count limit of the host would be exceeded.
	ErrTooLarge Errno = -4
	// ErrUnavailable: the host has no such store configured.
	ErrUnavailable Errno = -5
)

// ErrnoName returns the spec name of e, for error messages and logs.
func ErrnoName(e Errno) string {
	switch e {
	case ErrNotFound:
		return "ErrNotFound"
	case ErrInvalid:
		return "ErrInvalid"
	case ErrPhase:
		return "ErrPhase"
	case ErrTooLarge:
		return "ErrTooLarge"
	case ErrUnavailable:
		return "ErrUnavailable"
	}
	return "Errno(" + strconv.Itoa(int(e)) + ")"
}

// Phase is the guest export the host is currently running.
type Phase = int32

// The phases, as the spec numbers them.
const (
	PhaseConfigure Phase = 1 // wedge_configure (and _initialize)
	PhaseRequest   Phase = 2 // wedge_on_request
	PhaseResponse  Phase = 3 // wedge_on_response
)

// PhaseName returns "configure", "request" or "response".
func PhaseName(p Phase) string {
	switch p {
	case PhaseConfigure:
		return "configure"
	case PhaseRequest:
		return "request"
	case PhaseResponse:
		return "response"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Msg selects the HTTP message a header or body call addresses.
type Msg = int32

const (
	// MsgRequest is the client's request. Writable in the request phase only.
	MsgRequest Msg = 0
	// MsgResponse is, in the request phase, the answer the plugin is building
	// (if it continues, the host adds its header fields to the client's
	// response at the plugin's position in the response phase, whoever
	// produced it: README.md section 4); in the response phase, the response
	// on its way to the client.
	MsgResponse Msg = 1
)

// Field names a request attribute for field_get and field_set.
type Field = int32

const (
	FieldMethod     Field = 0 // "GET"; writable
	FieldScheme     Field = 1 // "http" or "https"
	FieldHost       Field = 2 // Host header or :authority, as the client sent it; writable
	FieldPath       Field = 3 // path as received, percent-encoded, without query; writable
	FieldRawQuery   Field = 4 // query without '?', percent-encoded; writable
	FieldProto      Field = 5 // "HTTP/1.1"
	FieldClientAddr Field = 6 // "203.0.113.7:51234"
	FieldRequestID  Field = 7 // host-assigned request id
	fieldCount            = 8
)

// FieldWritable reports whether field_set accepts f.
func FieldWritable(f Field) bool {
	return f == FieldMethod || f == FieldHost || f == FieldPath || f == FieldRawQuery
}

// ValidField reports whether f is a known field.
func ValidField(f Field) bool { return f >= 0 && f < fieldCount }

// Alg is a signature algorithm, named as in JWA (RFC 7518). A key registered
// with key_register is bound to one Alg: verification never takes an algorithm
// from the message, which rules out algorithm-confusion attacks.
type Alg = int32

const (
	AlgHS256 Alg = 1  // HMAC-SHA256
	AlgHS384 Alg = 2  // HMAC-SHA384
	AlgHS512 Alg = 3  // HMAC-SHA512
	AlgRS256 Alg = 4  // RSASSA-PKCS1-v1_5 with SHA-256
	AlgRS384 Alg = 5  // RSASSA-PKCS1-v1_5 with SHA-384
	AlgRS512 Alg = 6  // RSASSA-PKCS1-v1_5 with SHA-512
	AlgPS256 Alg = 7  // RSASSA-PSS with SHA-256, salt length 32
	AlgPS384 Alg = 8  // RSASSA-PSS with SHA-384, salt length 48
	AlgPS512 Alg = 9  // RSASSA-PSS with SHA-512, salt length 64
	AlgES256 Alg = 10 // ECDSA P-256 with SHA-256, signature r||s (64 bytes)
	AlgES384 Alg = 11 // ECDSA P-384 with SHA-384, signature r||s (96 bytes)
	AlgEdDSA Alg = 12 // Ed25519
)

var algNames = [...]string{"", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}

// AlgName returns the JWA name of a ("HS256"), or "" if a is unknown.
func AlgName(a Alg) string {
	if a <= 0 || int(a) >= len(algNames) {
		return ""
	}
	return algNames[a]
}

// AlgByName returns the Alg for a JWA name, or 0 if the name is unknown.
func AlgByName(name []byte) Alg {
	for i := 1; i < len(algNames); i++ {
		if string(name) == algNames[i] {
			return Alg(i)
		}
	}
	return 0
}

// KeyFormat says how key_register's key bytes are encoded.
type KeyFormat = int32

const (
	// KeyRaw: the HMAC secret; a 32-byte Ed25519 public key; an uncompressed
	// EC point (0x04 || X || Y). Not accepted for RSA.
	KeyRaw KeyFormat = 0
	// KeyPKIX: a DER SubjectPublicKeyInfo (RSA, EC, Ed25519).
	KeyPKIX KeyFormat = 1
	// KeyJWK: one JWK object as JSON (RFC 7517): kty oct, RSA, EC or OKP.
	KeyJWK KeyFormat = 2
)

// Digest names a hash for the digest function.
type Digest = int32

const (
	DigestSHA256 Digest = 1
	DigestSHA384 Digest = 2
	DigestSHA512 Digest = 3
	// DigestKeyed is HMAC-SHA256 under a secret the host draws when it
	// starts and never hands out: one value digests the same within a host
	// process, and its digest tells nothing about it to whoever reads a
	// log, however few values it could be. For naming a client's key or
	// credential in logs and metrics.
	DigestKeyed Digest = 4
)

// DigestSize returns the output size of d, or 0 if d is unknown.
func DigestSize(d Digest) int {
	switch d {
	case DigestSHA256, DigestKeyed:
		return 32
	case DigestSHA384:
		return 48
	case DigestSHA512:
		return 64
	}
	return 0
}

// Level is a log level; the values are log/slog's.
type Level = int32

const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// MetricKind is the kind of a plugin-defined metric.
type MetricKind = int32

const (
	// MetricCounter: metric_record adds a non-negative value.
	MetricCounter MetricKind = 0
	// MetricGauge: metric_record sets the value.
	MetricGauge MetricKind = 1
	// MetricHistogram: metric_record observes a value (in seconds for durations).
	MetricHistogram MetricKind = 2
)

// ValueFlag qualifies a request-scoped value.
type ValueFlag = int32

const (
	// ValueForward sends the value to the origin with the request (for example
	// the identity an auth plugin verified).
	ValueForward ValueFlag = 1 << 0
)

// PurgeKind selects what cache_purge matches.
type PurgeKind = int32

const (
	PurgeKey PurgeKind = 0 // one cache key
	PurgeTag PurgeKind = 1 // every entry stored with this tag
)

// Limits the host enforces; exceeding one returns ErrTooLarge.
const (
	MaxHeaderNameLen = 256      // bytes in a header name a plugin sets
	MaxValueKeyLen   = 256      // bytes in a request-scoped value's key
	MaxValueLen      = 64 << 10 // bytes in one request-scoped value
	MaxValues        = 64       // request-scoped values per request
	MaxCacheKeyLen   = 4 << 10  // bytes in a cache key
	MaxCacheMetaLen  = 16 << 10
	MaxTags          = 32 // tags per cache entry
	MaxRateKeyLen    = 1 << 10
	MaxKeys          = 256 // keys registered per plugin version
	MaxMetrics       = 64  // metrics defined per plugin version
	MaxErrorLen      = 1 << 10
	MaxLogLen        = 8 << 10 // bytes of message plus attributes in one log call
)

// Streamed bodies (README.md, "Streamed bodies"): a body too large for the
// host to hold passes through it as it comes, and plugins see only what
// the host holds of it.
const (
	// StreamedPrefix is how much of a streamed request body the host
	// holds: its first bytes. It holds none of a streamed response body.
	StreamedPrefix = 64 << 10
	// BodyLengthUnknown is what body_read returns as the length of a
	// streamed body whose length is unknown (chunked) or too large for an
	// i32.
	BodyLengthUnknown = 1<<31 - 1
)
