package abi

//go:generate go run ./internal/abigen

// Type is the type of a host function parameter or result.
type Type uint8

const (
	// I32 is a Wasm i32 (Go int32).
	I32 Type = iota + 1
	// I64 is a Wasm i64 (Go int64).
	I64
	// F64 is a Wasm f64 (Go float64).
	F64
	// Bytes is a range of guest memory, passed as two i32: name_ptr, name_len.
	Bytes
)

// Param is one parameter of a host function.
type Param struct {
	Name string
	Type Type
}

// Func describes one host function. The phases column of the spec says where
// each may be called; anything else returns ErrPhase.
type Func struct {
	Name   string
	Params []Param
	Result Type // I32 or I64
	Doc    string
}

func p(name string, t Type) Param { return Param{name, t} }

// Funcs is every host function of ABI v1, in spec order. It is the single
// source for the host adapters, the guest bindings and the spec check.
var Funcs = []Func{
	// Plugin lifecycle.
	{"config_read", []Param{p("buf", Bytes)}, I32,
		"Copies the plugin's configuration bytes into buf; returns the full length."},
	{"error_set", []Param{p("msg", Bytes)}, I32,
		"Sets the failure message for the current call (truncated to MaxErrorLen); returns 0."},

	// Request view.
	{"field_get", []Param{p("field", I32), p("buf", Bytes)}, I32,
		"Copies a request Field into buf; returns the full length, or ErrInvalid for an unknown field."},
	{"field_set", []Param{p("field", I32), p("value", Bytes)}, I32,
		"Rewrites a writable request Field (request phase); returns 0, ErrInvalid or ErrPhase."},

	// Status.
	{"status_get", nil, I32,
		"Returns the response status: in the request phase the status of the answer being built (0 if unset)."},
	{"status_set", []Param{p("code", I32)}, I32,
		"Sets the response status, 200-599; returns 0, ErrInvalid or ErrPhase (configure)."},

	// Headers.
	{"header_get", []Param{p("msg", I32), p("name", Bytes), p("buf", Bytes)}, I32,
		"Copies the first value of a header into buf; returns its full length or ErrNotFound."},
	{"header_values", []Param{p("msg", I32), p("name", Bytes), p("buf", Bytes)}, I32,
		"Copies every value of a header, as a list, into buf; returns the full length (0 if absent)."},
	{"header_names", []Param{p("msg", I32), p("buf", Bytes)}, I32,
		"Copies the header names, in order and as a list, into buf; returns the full length."},
	{"header_set", []Param{p("msg", I32), p("name", Bytes), p("value", Bytes)}, I32,
		"Replaces every value of a header with value; returns 0, ErrInvalid or ErrPhase."},
	{"header_add", []Param{p("msg", I32), p("name", Bytes), p("value", Bytes)}, I32,
		"Appends a value to a header; returns 0, ErrInvalid or ErrPhase."},
	{"header_remove", []Param{p("msg", I32), p("name", Bytes)}, I32,
		"Removes every value of a header; returns 0, ErrInvalid or ErrPhase."},

	// Bodies.
	{"body_read", []Param{p("msg", I32), p("offset", I32), p("buf", Bytes)}, I32,
		"Copies the body from offset into buf; returns the full body length."},
	{"body_set", []Param{p("msg", I32), p("body", Bytes)}, I32,
		"Replaces the body; returns 0, ErrTooLarge, ErrInvalid or ErrPhase."},

	// Request-scoped values.
	{"value_get", []Param{p("key", Bytes), p("buf", Bytes)}, I32,
		"Copies a request-scoped value into buf; returns its full length or ErrNotFound."},
	{"value_set", []Param{p("key", Bytes), p("value", Bytes), p("flags", I32)}, I32,
		"Sets a request-scoped value with ValueFlag flags; returns 0, ErrTooLarge or ErrPhase."},

	// Response cache.
	{"cache_lookup", []Param{p("key", Bytes), p("buf", Bytes)}, I32,
		"Copies CacheInfo then the entry's metadata into buf; returns the full length or ErrNotFound."},
	{"cache_store", []Param{p("key", Bytes), p("meta", Bytes), p("ttl_ms", I64), p("stale_ms", I64), p("tags", Bytes)}, I32,
		"Stores the current response under key with metadata, freshness, stale window and a tag list; returns 0 or an Errno."},
	{"cache_serve", []Param{p("key", Bytes)}, I32,
		"Replaces the current response with the stored one, without copying it through the guest; returns its status or ErrNotFound."},
	{"cache_purge", []Param{p("kind", I32), p("match", Bytes)}, I32,
		"Removes the entry with this key (PurgeKey) or every entry with this tag (PurgeTag); returns how many."},
	{"cache_revalidate", []Param{p("key", Bytes)}, I32,
		"Schedules a background revalidation of key with a copy of the request as it is now, run once an answered request is written; returns 1 scheduled, 0 skipped, or an Errno."},
	{"cache_request", []Param{p("name", Bytes)}, I32,
		"Runs the request phase of the RFC 9111 cache (package httpcache) for the current GET or HEAD: answers a usable entry in the host or prepares the forward, naming the cache name in Cache-Status; returns CacheRequest flags or an Errno."},
	{"cache_response", []Param{p("name", Bytes), p("options", I32)}, I32,
		"Settles the response phase of the RFC 9111 cache (package httpcache) in the host for a response it will not store, adding name's Cache-Status member; returns CacheResponse flags (0: the plugin decides) or an Errno."},
	{"range_apply", []Param{p("value", Bytes)}, I32,
		"Applies a Range field value to the current response (206 or 416, the body a view of the old one); returns the resulting status."},

	// Rate limiter.
	{"ratelimit_take", []Param{p("key", Bytes), p("limit", I32), p("period_ms", I64), p("burst", I32), p("cost", I32), p("result", Bytes)}, I32,
		"GCRA: takes cost units from key's allowance of limit per period with the given burst; writes a RateResult; returns 1 allowed, 0 denied."},

	// Crypto.
	{"key_register", []Param{p("alg", I32), p("format", I32), p("key", Bytes)}, I32,
		"Registers a verification key for one Alg (configure phase); returns a key handle (>= 0)."},
	{"verify", []Param{p("key", I32), p("msg", Bytes), p("sig", Bytes)}, I32,
		"Verifies sig over msg with a registered key; returns 1 valid, 0 invalid, or ErrNotFound."},
	{"digest", []Param{p("alg", I32), p("msg", Bytes), p("buf", Bytes)}, I32,
		"Writes the Digest of msg into buf; returns the digest size."},
	{"token_policy", []Param{p("spec", Bytes)}, I32,
		"Registers a TokenPolicy, encoded by TokenPolicy.Append (configure phase); returns a policy handle (>= 0)."},
	{"token_verify", []Param{p("policy", I32), p("token", Bytes), p("buf", Bytes)}, I32,
		"Verifies a compact JWS under a policy; copies a TokenVerdict byte, then for a valid token the policy's claims as a list, into buf; returns the full length."},

	// Clock and randomness.
	{"time_now", nil, I64,
		"Returns the host's wall clock in Unix nanoseconds."},
	{"random_fill", []Param{p("buf", Bytes)}, I32,
		"Fills buf with cryptographically secure random bytes; returns 0."},

	// Observability.
	{"log", []Param{p("level", I32), p("msg", Bytes), p("attrs", Bytes)}, I32,
		"Logs msg at a Level with attrs, a list of alternating keys and values; returns 0 or ErrInvalid."},
	{"metric_define", []Param{p("kind", I32), p("name", Bytes)}, I32,
		"Defines a plugin metric (configure phase); returns a metric handle (>= 0)."},
	{"metric_record", []Param{p("metric", I32), p("value", F64)}, I32,
		"Adds to a counter, sets a gauge or observes a histogram; returns 0, ErrNotFound or ErrInvalid."},
}

// Signature renders f as it appears in the spec, for example
// "header_get(msg i32, name_ptr i32, name_len i32, buf_ptr i32, buf_len i32) -> i32".
func (f Func) Signature() string {
	s := f.Name + "("
	for i, prm := range f.WasmParams() {
		if i > 0 {
			s += ", "
		}
		s += prm.Name + " " + prm.Type.String()
	}
	return s + ") -> " + f.Result.String()
}

// WasmParams expands Bytes parameters into their ptr and len halves.
func (f Func) WasmParams() []Param {
	var out []Param
	for _, prm := range f.Params {
		if prm.Type == Bytes {
			out = append(out, Param{prm.Name + "_ptr", I32}, Param{prm.Name + "_len", I32})
			continue
		}
		out = append(out, prm)
	}
	return out
}

// String returns the Wasm spelling of t ("i32").
func (t Type) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	case F64:
		return "f64"
	case Bytes:
		return "bytes"
	}
	return "?"
}

// FuncByName returns the host function called name.
func FuncByName(name string) (Func, bool) {
	for _, f := range Funcs {
		if f.Name == name {
			return f, true
		}
	}
	return Func{}, false
}
