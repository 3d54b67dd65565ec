package host

import (
	"bytes"
	"slices"
	"strings"
	"unsafe"

	"github.com/talowa/wedge/wasm/abi"
)

// Exchange is one HTTP exchange as plugins see it. [MemExchange] is the
// implementation everything runs on: the edge embeds it in its pooled
// per-request exchange (filled from a copy of the fasthttp request; it
// overrides SetBody and LoadResponse to pool answers' bodies and to tell
// cached bodies from its own), and wasmtest, sdktest and the conformance kit
// use it as it is, so all of them share one set of exchange semantics. The
// host validates every argument before calling a setter (header names and
// values, fields, statuses, sizes), so an implementation only stores. Byte
// slices passed in are views of guest memory valid only during the call: an
// implementation copies what it keeps.
type Exchange interface {
	// Field returns a request attribute. The result is only read before the
	// next call on the Exchange.
	Field(f abi.Field) []byte
	// SetField rewrites a writable request attribute (abi.FieldWritable).
	SetField(f abi.Field, v []byte)
	// Status is the response status, 0 while no answer has one.
	Status() int
	SetStatus(code int)
	// HeaderGet returns the first value of a header (names compare
	// case-insensitively).
	HeaderGet(m abi.Msg, name []byte) ([]byte, bool)
	// AppendHeaderValues appends every value of a header, each followed by NUL.
	AppendHeaderValues(dst []byte, m abi.Msg, name []byte) []byte
	// AppendHeaderNames appends each header name once, in order of first
	// appearance, each followed by NUL.
	AppendHeaderNames(dst []byte, m abi.Msg) []byte
	HeaderSet(m abi.Msg, name, value []byte)
	HeaderAdd(m abi.Msg, name, value []byte)
	HeaderDel(m abi.Msg, name []byte)
	Body(m abi.Msg) []byte
	SetBody(m abi.Msg, body []byte)
	// StreamedLength reports whether m's body streams past the host, and
	// then its full length (-1: unknown); Body(m) is the prefix held of it.
	StreamedLength(m abi.Msg) (int64, bool)
	// Values are the request-scoped values; they live until the response is
	// written.
	Values() *Values
	// StoreResponse returns an immutable copy of the current response, for
	// the response cache.
	StoreResponse() *StoredResponse
	// LoadResponse makes r the current response. r is shared and immutable:
	// an implementation may reference r.Body rather than copy it.
	LoadResponse(r *StoredResponse)
	// SliceResponseBody narrows the response body to its bytes [from, to)
	// without copying them: a range of a cached body stays a view of the
	// stored bytes (range_apply). 0 <= from <= to <= len(body).
	SliceResponseBody(from, to int)
	// Revalidate keeps a copy of the request and its values as they are
	// now, for a background revalidation of cache entry key
	// (cache_revalidate); release is called once that is done or dropped.
	// It reports false, keeping nothing, when the exchange already keeps
	// one.
	Revalidate(key []byte, release func()) bool
}

// HeaderField is one header line.
type HeaderField struct {
	Name, Value string
}

// StoredResponse is an immutable response held by the cache.
type StoredResponse struct {
	Status int
	Header []HeaderField
	Body   []byte
	// Fetched is the cache's purge position (MemCache.Purges) when the
	// fetch of this response began, 0 if none was taken: the cache does
	// not store it if a purge began since (MemCache.Set).
	Fetched uint64
}

// Size is the memory a stored response accounts for in the cache.
func (r *StoredResponse) Size() int {
	n := 64 + len(r.Body)
	for _, f := range r.Header {
		n += 32 + len(f.Name) + len(f.Value)
	}
	return n
}

// Header is an ordered, multi-valued header list. Names keep the case they
// were added with and compare case-insensitively.
type Header struct {
	Fields []HeaderField
}

// Get returns the first value of name.
func (h *Header) Get(name string) (string, bool) {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Values returns every value of name, in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Add appends a field.
func (h *Header) Add(name, value string) {
	h.Fields = append(h.Fields, HeaderField{name, value})
}

// Set replaces every value of name with value, at the position of the first.
func (h *Header) Set(name, value string) {
	for i, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			h.Fields[i].Value = value
			h.del(name, i+1)
			return
		}
	}
	h.Add(name, value)
}

// Del removes every value of name.
func (h *Header) Del(name string) { h.del(name, 0) }

func (h *Header) del(name string, from int) {
	out := h.Fields[:from]
	for _, f := range h.Fields[from:] {
		if !strings.EqualFold(f.Name, name) {
			out = append(out, f)
		}
	}
	h.Fields = out
}

// Request is an HTTP request held in memory.
type Request struct {
	Method, Scheme, Host, Path, RawQuery, Proto, ClientAddr, ID string
	Header                                                      Header
	Body                                                        []byte
	// Streamed, when not 0, is the full length (-1: unknown) of a body
	// that streams past the host, as the edge's past
	// limits.stream_threshold: Body is then the first abi.StreamedPrefix
	// bytes of it, and plugins cannot replace it.
	Streamed int64
}

// Response is an HTTP response held in memory.
type Response struct {
	Status int
	Header Header
	Body   []byte
	// Streamed, when not 0, is the full length (-1: unknown) of a body
	// that streams past the host, as a large one from the edge's origin:
	// Body is then empty, and plugins cannot replace it.
	Streamed int64
}

// MemExchange is an [Exchange] held in memory: what the edge (embedded in its
// pooled exchange), wasmtest and sdktest run plugins against. It is not safe
// for concurrent use.
type MemExchange struct {
	Req  Request
	Resp Response
	Vals Values
	// Fetched is the cache's purge position when the fetch of Resp began
	// (MemCache.Purges), set by the chain's Origin, 0 if it set none:
	// StoreResponse carries it to the cache, which does not store a
	// response a purge began after.
	Fetched uint64

	reval *Revalidation // what cache_revalidate asked for, until taken

	// held is the entry cache_request forwarded a validation of, under
	// heldKey (in strs), for the rest of the exchange (EntryHolder).
	held    *CacheEntry
	heldKey string

	// strs holds the names and values of the header fields plugins set
	// (HeaderSet, HeaderAdd), so that setting one allocates nothing once
	// the exchange is warm: Reset reuses it for the next request. What
	// outlives the request copies them (StoreResponse, Revalidate); a full
	// chunk is replaced, never reused, so the strings in it stay valid.
	strs []byte

	names []fieldName // AppendHeaderNames's scratch, kept for the next call
}

// Reset empties x for the next request, keeping its storage: header
// fields, values, and the bytes of the fields plugins set. The body is
// never reused: a cached response loaded into the exchange shares its
// body with the cache. Nothing may keep a header field string of x's past
// Reset without copying it.
func (x *MemExchange) Reset() {
	x.Req = Request{Header: Header{Fields: x.Req.Header.Fields[:0]}}
	x.Resp = Response{Header: Header{Fields: x.Resp.Header.Fields[:0]}}
	x.Vals.Reset()
	x.Fetched = 0
	x.held, x.heldKey = nil, ""
	x.strs = x.strs[:0]
}

// FetchPosition implements FetchPositioner.
func (x *MemExchange) FetchPosition() *uint64 { return &x.Fetched }

// HoldEntry implements EntryHolder.
func (x *MemExchange) HoldEntry(key []byte, e *CacheEntry) {
	x.held, x.heldKey = e, x.str(key)
}

// HeldEntry implements EntryHolder.
func (x *MemExchange) HeldEntry(key []byte) (*CacheEntry, bool) {
	if x.held == nil || x.heldKey != string(key) {
		return nil, false
	}
	return x.held, true
}

// str returns a copy of b as a string held in x.strs.
func (x *MemExchange) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(x.strs)+len(b) > cap(x.strs) {
		x.strs = make([]byte, 0, max(2*cap(x.strs), len(b), 512))
	}
	at := len(x.strs)
	x.strs = append(x.strs, b...)
	return unsafe.String(&x.strs[at], len(b))
}

// CopyString returns a copy of b held in x's own storage, which Reset reuses:
// a server filling Req from its buffers takes its fields this way, with no
// allocation per field once x is warm. The result is valid until Reset;
// what x hands out to outlive the request (StoreResponse, Revalidate) it
// copies first.
func (x *MemExchange) CopyString(b []byte) string { return x.str(b) }

// own returns s, copied if it is held in x.strs (which Reset reuses).
func (x *MemExchange) own(s string) string {
	if len(s) == 0 || cap(x.strs) == 0 {
		return s
	}
	p, base := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(x.strs)))
	if p < base || p >= base+uintptr(cap(x.strs)) {
		return s
	}
	return strings.Clone(s)
}

// ownFields copies the strings of fs that x.strs holds.
func (x *MemExchange) ownFields(fs []HeaderField) {
	for i := range fs {
		fs[i].Name, fs[i].Value = x.own(fs[i].Name), x.own(fs[i].Value)
	}
}

var (
	_ Exchange        = (*MemExchange)(nil)
	_ EntryHolder     = (*MemExchange)(nil)
	_ FetchPositioner = (*MemExchange)(nil)
)

func (x *MemExchange) header(m abi.Msg) *Header {
	if m == abi.MsgRequest {
		return &x.Req.Header
	}
	return &x.Resp.Header
}

// field is where x keeps f's value; nil for an unknown field.
func (x *MemExchange) field(f abi.Field) *string {
	switch f {
	case abi.FieldMethod:
		return &x.Req.Method
	case abi.FieldScheme:
		return &x.Req.Scheme
	case abi.FieldHost:
		return &x.Req.Host
	case abi.FieldPath:
		return &x.Req.Path
	case abi.FieldRawQuery:
		return &x.Req.RawQuery
	case abi.FieldProto:
		return &x.Req.Proto
	case abi.FieldClientAddr:
		return &x.Req.ClientAddr
	case abi.FieldRequestID:
		return &x.Req.ID
	}
	return nil
}

// Field implements Exchange.
func (x *MemExchange) Field(f abi.Field) []byte {
	var v string
	if p := x.field(f); p != nil {
		v = *p
	}
	return view(v)
}

// view is s as bytes without a copy: the host only reads what Field and
// HeaderGet return, before the next call.
func view(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// SetField implements Exchange.
func (x *MemExchange) SetField(f abi.Field, v []byte) {
	if p := x.field(f); p != nil && abi.FieldWritable(f) {
		*p = string(v)
	}
}

// Status implements Exchange.
func (x *MemExchange) Status() int { return x.Resp.Status }

// SetStatus implements Exchange.
func (x *MemExchange) SetStatus(code int) { x.Resp.Status = code }

// HeaderGet implements Exchange.
func (x *MemExchange) HeaderGet(m abi.Msg, name []byte) ([]byte, bool) {
	v, ok := x.header(m).Get(unsafe.String(unsafe.SliceData(name), len(name)))
	return view(v), ok
}

// AppendHeaderValues implements Exchange.
func (x *MemExchange) AppendHeaderValues(dst []byte, m abi.Msg, name []byte) []byte {
	for _, f := range x.header(m).Fields {
		if strings.EqualFold(f.Name, string(name)) {
			dst = abi.AppendList(dst, []byte(f.Value))
		}
	}
	return dst
}

// AppendHeaderNames implements Exchange. It sorts the names rather than
// comparing each with those before it: header_names is charged by the
// bytes it copies out, and nothing stops a host function at its deadline,
// so its time must not grow with the square of the fields (a plugin may
// add 256 in each call, and the response collects them all).
func (x *MemExchange) AppendHeaderNames(dst []byte, m abi.Msg) []byte {
	fields := x.header(m).Fields
	ns := x.names[:0]
	for i, f := range fields {
		ns = append(ns, fieldName{f.Name, i})
	}
	// By name, then position: the first of each name heads its run.
	slices.SortFunc(ns, func(a, b fieldName) int {
		if c := compareFold(a.name, b.name); c != 0 {
			return c
		}
		return a.at - b.at
	})
	first := ns[:0]
	for _, n := range ns {
		if len(first) == 0 || compareFold(first[len(first)-1].name, n.name) != 0 {
			first = append(first, n)
		}
	}
	slices.SortFunc(first, func(a, b fieldName) int { return a.at - b.at })
	for _, n := range first {
		dst = abi.AppendList(dst, []byte(n.name))
	}
	clear(ns) // the names are the exchange's strings, which Reset reuses
	x.names = ns[:0]
	return dst
}

// fieldName is a header field's name and its position, for
// AppendHeaderNames.
type fieldName struct {
	name string
	at   int
}

// compareFold compares header names as ASCII without case: names are
// tokens, which are ASCII.
func compareFold(a, b string) int {
	for i := range min(len(a), len(b)) {
		ca, cb := lowerASCII(a[i]), lowerASCII(b[i])
		if ca != cb {
			return int(ca) - int(cb)
		}
	}
	return len(a) - len(b)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// HeaderSet implements Exchange.
func (x *MemExchange) HeaderSet(m abi.Msg, name, value []byte) {
	x.header(m).Set(x.str(name), x.str(value))
}

// HeaderAdd implements Exchange.
func (x *MemExchange) HeaderAdd(m abi.Msg, name, value []byte) {
	x.header(m).Add(x.str(name), x.str(value))
}

// HeaderDel implements Exchange.
func (x *MemExchange) HeaderDel(m abi.Msg, name []byte) { x.header(m).Del(string(name)) }

// Body implements Exchange.
func (x *MemExchange) Body(m abi.Msg) []byte {
	if m == abi.MsgRequest {
		return x.Req.Body
	}
	return x.Resp.Body
}

// StreamedLength implements Exchange.
func (x *MemExchange) StreamedLength(m abi.Msg) (int64, bool) {
	n := x.Resp.Streamed
	if m == abi.MsgRequest {
		n = x.Req.Streamed
	}
	return n, n != 0
}

// SetBody implements Exchange.
func (x *MemExchange) SetBody(m abi.Msg, body []byte) {
	b := bytes.Clone(body)
	if m == abi.MsgRequest {
		x.Req.Body = b
	} else {
		x.Resp.Body = b
	}
}

// Values implements Exchange.
func (x *MemExchange) Values() *Values { return &x.Vals }

// StoreResponse implements Exchange.
func (x *MemExchange) StoreResponse() *StoredResponse {
	r := &StoredResponse{
		Status:  x.Resp.Status,
		Header:  append([]HeaderField(nil), x.Resp.Header.Fields...),
		Body:    bytes.Clone(x.Resp.Body),
		Fetched: x.Fetched,
	}
	x.ownFields(r.Header)
	return r
}

// LoadResponse implements Exchange.
func (x *MemExchange) LoadResponse(r *StoredResponse) {
	x.Resp.Status = r.Status
	x.Resp.Header.Fields = append(x.Resp.Header.Fields[:0], r.Header...)
	x.Resp.Body = r.Body
	x.Resp.Streamed = 0 // a stored response is held whole
}

// SliceResponseBody implements Exchange. The slice's capacity ends with it,
// so nothing appended to the body can reach the stored bytes after it.
func (x *MemExchange) SliceResponseBody(from, to int) {
	x.Resp.Body = x.Resp.Body[from:to:to]
}

// Revalidate implements Exchange.
func (x *MemExchange) Revalidate(key []byte, release func()) bool {
	if x.reval != nil {
		return false
	}
	x.reval = newRevalidation(key, &x.Req, &x.Vals, release)
	r := &x.reval.Req
	for _, s := range []*string{&r.Method, &r.Scheme, &r.Host, &r.Path, &r.RawQuery, &r.Proto, &r.ClientAddr, &r.ID} {
		*s = x.own(*s)
	}
	x.ownFields(r.Header.Fields)
	return true
}

// TakeRevalidation returns the revalidation cache_revalidate asked for
// during this exchange, if any, and forgets it: the runner of the chain
// calls it once the response is written and owns the result (it runs it or
// drops it, then calls Done).
func (x *MemExchange) TakeRevalidation() *Revalidation {
	r := x.reval
	x.reval = nil
	return r
}

// Values holds request-scoped values. The zero value is empty and ready; Reset
// keeps the storage for the next request.
type Values struct {
	items []valueItem
}

type valueItem struct {
	key, val []byte
	flags    abi.ValueFlag
}

// Get returns the value stored under key.
func (v *Values) Get(key []byte) ([]byte, bool) {
	for i := range v.items {
		if bytes.Equal(v.items[i].key, key) {
			return v.items[i].val, true
		}
	}
	return nil, false
}

// Set stores a copy of val under key, replacing any earlier value.
func (v *Values) Set(key, val []byte, flags abi.ValueFlag) abi.Errno {
	if len(key) > abi.MaxValueKeyLen || len(val) > abi.MaxValueLen {
		return abi.ErrTooLarge
	}
	for i := range v.items {
		if bytes.Equal(v.items[i].key, key) {
			v.items[i].val = append(v.items[i].val[:0], val...)
			v.items[i].flags = flags
			return 0
		}
	}
	if len(v.items) >= abi.MaxValues {
		return abi.ErrTooLarge
	}
	if len(v.items) < cap(v.items) {
		// Reuse the buffers a previous request left behind.
		v.items = v.items[:len(v.items)+1]
		it := &v.items[len(v.items)-1]
		it.key = append(it.key[:0], key...)
		it.val = append(it.val[:0], val...)
		it.flags = flags
		return 0
	}
	v.items = append(v.items, valueItem{bytes.Clone(key), bytes.Clone(val), flags})
	return 0
}

// Len is the number of values.
func (v *Values) Len() int { return len(v.items) }

// At returns the i-th value in insertion order.
func (v *Values) At(i int) (key, val []byte, flags abi.ValueFlag) {
	it := &v.items[i]
	return it.key, it.val, it.flags
}

// Reset empties v, keeping its storage.
func (v *Values) Reset() { v.items = v.items[:0] }
