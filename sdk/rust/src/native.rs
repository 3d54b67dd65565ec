//! The native host: every host function of ABI v1 for non-wasm32 builds,
//! over a thread-local fake exchange, so that `cargo test` runs plugin code
//! without a Wasm engine. `hostcall`'s wrappers call these functions by
//! name; `testing` installs a [`State`] for the length of one guest call
//! and reads it back. The rules follow wasm/abi/README.md and the Go host
//! (wasm/host/call.go) check for check and in the same order, so a plugin
//! sees the errors it would see in the edge; where the native host differs
//! (no RFC 9111 cache engine, no crypto but SHA-2 and HMAC), `testing`'s doc says so.
//!
//! The state is thread-local, not process-wide as in Go's sdk/sdktest:
//! `cargo test` runs tests on many threads, and each gets its own host.
//!
//! Two kinds of tests hold it to the spec: `tests` checks each function
//! against wasm/abi/README.md, and the probe (`probe.rs`, a script of host
//! calls in every phase) writes a transcript that sdk/rust's Go test
//! compares, line by line, with the same script's run as Wasm in the real
//! host.

extern crate std;

mod sha2;

use core::cell::RefCell;
use std::string::String;
use std::vec::Vec;

use crate::abi::*;
use crate::testing::{Headers, HttpRequest, HttpResponse, LogRecord, Metric, MetricKind, Value};
use crate::Items;

std::thread_local! {
    static CURRENT: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Bounds the native host applies beyond the ABI's constants (wasm/host/validate.go).
const MAX_FIELD_LEN: usize = 8 << 10;
const MAX_HEADER_VALUE_LEN: usize = 16 << 10;
/// 400 days: the bound on TTLs, stale windows and rate periods.
const MAX_CACHE_MS: i64 = 400 * 24 * 3600 * 1000;
/// The edge's default body limit.
pub(crate) const DEFAULT_MAX_BODY: usize = 8 << 20;
/// Header names the host owns (wasm/abi/README.md, header_set).
const RESERVED: [&str; 9] = [
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Upgrade",
    "Host",
];

/// The host's state: the plugin's environment (config, stores, keys,
/// metrics, logs, clock) and, in the request and response phases, the
/// exchange. The derived default is an empty placeholder that costs
/// nothing to make; `testing` builds real ones.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) phase: i32,
    pub(crate) error: Vec<u8>,
    pub(crate) config: Vec<u8>,
    pub(crate) ex: Option<Exchange>,
    /// None: the host has no cache (ErrUnavailable).
    pub(crate) cache: Option<Vec<Entry>>,
    /// Per rate key, the theoretical arrival time of its next unit (Unix ns).
    pub(crate) rates: Vec<(Vec<u8>, i64)>,
    /// HMAC keys: the algorithm and the secret.
    pub(crate) keys: Vec<(i32, Vec<u8>)>,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) logs: Vec<LogRecord>,
    /// A fixed clock (Unix ns) when set; the system clock otherwise.
    pub(crate) clock: Option<i64>,
    pub(crate) keyed_secret: [u8; 32],
    pub(crate) max_body: usize,
    /// Echo log records to stderr, which `cargo test` shows for failing tests.
    pub(crate) echo_logs: bool,
}

/// The exchange of one request: what the request phase reads and changes,
/// the answer or response, and the request-scoped values.
pub(crate) struct Exchange {
    pub(crate) req: HttpRequest,
    pub(crate) resp: HttpResponse,
    pub(crate) values: Vec<Value>,
    /// The copy of the request and its values cache_revalidate took, for
    /// `testing` to revalidate once the exchange is done.
    pub(crate) revalidation: Option<(HttpRequest, Vec<Value>)>,
}

/// One cache entry.
pub(crate) struct Entry {
    pub(crate) key: Vec<u8>,
    pub(crate) resp: HttpResponse,
    pub(crate) meta: Vec<u8>,
    pub(crate) tags: Vec<Vec<u8>>,
    pub(crate) stored_ns: i64,
    pub(crate) ttl_ms: i64,
    pub(crate) stale_ms: i64,
}

impl State {
    pub(crate) fn now(&self) -> i64 {
        match self.clock {
            Some(ns) => ns,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0),
        }
    }

    fn ex(&mut self) -> Result<&mut Exchange, i32> {
        self.ex.as_mut().ok_or(ERR_PHASE)
    }

    /// The live entry under key, dropping it if it has outlived its TTL
    /// and stale window, as the Go cache's expiry does.
    fn entry(&mut self, key: &[u8]) -> Result<&Entry, i32> {
        let now = self.now();
        let cache = self.cache.as_mut().ok_or(ERR_UNAVAILABLE)?;
        let i = cache
            .iter()
            .position(|e| e.key == key)
            .ok_or(ERR_NOT_FOUND)?;
        if !cache[i].live(now) {
            cache.remove(i);
            return Err(ERR_NOT_FOUND);
        }
        Ok(&cache[i])
    }
}

impl Entry {
    /// Whether the store still keeps the entry at now (Unix ns).
    pub(crate) fn live(&self, now: i64) -> bool {
        now < self.stored_ns + (self.ttl_ms + self.stale_ms) * 1_000_000
    }
}

/// Runs f with state installed as this thread's host, in phase; the state
/// is back in `*state` afterwards, even when f panics (a plugin's panic,
/// which a test may expect).
pub(crate) fn call<R>(state: &mut State, phase: i32, f: impl FnOnce() -> R) -> R {
    struct Restore<'a>(&'a mut State);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            if let Some(s) = CURRENT.with(|c| c.borrow_mut().take()) {
                *self.0 = s;
            }
            self.0.phase = 0;
        }
    }
    let busy = CURRENT.with(|c| c.borrow().is_some());
    assert!(
        !busy,
        "wedge: a native host call is already running on this thread"
    );
    state.phase = phase;
    state.error.clear();
    let taken = core::mem::take(state);
    CURRENT.with(|c| *c.borrow_mut() = Some(taken));
    let _restore = Restore(state);
    f()
}

/// Runs f on the installed host. Host functions called outside
/// `testing` have no host to talk to, like Go's sdk/hostcall without
/// sdktest, and panic saying so.
fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    CURRENT.with(|c| {
        let mut c = c.borrow_mut();
        let s = c
            .as_mut()
            .expect("wedge: host function called natively outside a test host: run plugin code through wedge::testing");
        f(s)
    })
}

/// Unwraps a result whose error is an errno.
fn errno(r: Result<i32, i32>) -> i32 {
    match r {
        Ok(v) | Err(v) => v,
    }
}

/// "Buffer + limit, returns the full length".
fn copy_out(buf: &mut [u8], data: &[u8]) -> i32 {
    let n = buf.len().min(data.len());
    buf[..n].copy_from_slice(&data[..n]);
    data.len() as i32
}

/// An RFC 9110 token (section 5.6.2): what field names and forwarded value
/// keys must be.
fn valid_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Field content without controls other than HTAB: CR, LF and NUL are how a
/// value turns into header injection.
fn valid_header_value(s: &[u8]) -> bool {
    s.iter().all(|&c| (c >= 0x20 || c == b'\t') && c != 0x7f)
}

fn visible_except(v: &[u8], except: &[u8]) -> bool {
    v.iter()
        .all(|&c| c > 0x20 && c < 0x7f && !except.contains(&c))
}

fn valid_field(field: i32, v: &[u8]) -> bool {
    match field {
        FIELD_METHOD => valid_token(v),
        FIELD_HOST => !v.is_empty() && visible_except(v, b"/?#@\\"),
        FIELD_PATH => v.first() == Some(&b'/') && visible_except(v, b"?#"),
        FIELD_RAW_QUERY => visible_except(v, b"#"),
        _ => false,
    }
}

fn valid_msg(msg: i32) -> bool {
    msg == MSG_REQUEST || msg == MSG_RESPONSE
}

fn headers(ex: &mut Exchange, msg: i32) -> &mut Headers {
    if msg == MSG_REQUEST {
        &mut ex.req.headers
    } else {
        &mut ex.resp.headers
    }
}

fn body(ex: &mut Exchange, msg: i32) -> &mut Vec<u8> {
    if msg == MSG_REQUEST {
        &mut ex.req.body
    } else {
        &mut ex.resp.body
    }
}

pub fn config_read(buf: &mut [u8]) -> i32 {
    with(|s| copy_out(buf, &s.config))
}

pub fn error_set(msg: &[u8]) -> i32 {
    with(|s| {
        let n = msg.len().min(MAX_ERROR_LEN as usize);
        s.error.clear();
        s.error.extend_from_slice(&msg[..n]);
        0
    })
}

pub fn field_get(field: i32, buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        let v = ex.req.field(field).ok_or(ERR_INVALID)?;
        Ok(copy_out(buf, v.as_bytes()))
    }))
}

pub fn field_set(field: i32, value: &[u8]) -> i32 {
    errno(with(|s| {
        if !matches!(
            field,
            FIELD_METHOD | FIELD_HOST | FIELD_PATH | FIELD_RAW_QUERY
        ) {
            return Err(ERR_INVALID);
        }
        if s.phase != PHASE_REQUEST {
            return Err(ERR_PHASE);
        }
        if value.len() > MAX_FIELD_LEN {
            return Err(ERR_TOO_LARGE);
        }
        if !valid_field(field, value) {
            return Err(ERR_INVALID);
        }
        // Validated as printable ASCII above.
        let v = String::from_utf8(value.to_vec()).map_err(|_| ERR_INVALID)?;
        let ex = s.ex()?;
        if let Some(f) = ex.req.field_mut(field) {
            *f = v;
        }
        Ok(0)
    }))
}

pub fn status_get() -> i32 {
    errno(with(|s| Ok(i32::from(s.ex()?.resp.status))))
}

pub fn status_set(code: i32) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        if !(200..=599).contains(&code) {
            return Err(ERR_INVALID);
        }
        ex.resp.status = code as u16;
        Ok(0)
    }))
}

pub fn header_get(msg: i32, name: &[u8], buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        if !valid_msg(msg) {
            return Err(ERR_INVALID);
        }
        let v = headers(ex, msg).get_bytes(name).ok_or(ERR_NOT_FOUND)?;
        Ok(copy_out(buf, v))
    }))
}

pub fn header_values(msg: i32, name: &[u8], buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        if !valid_msg(msg) {
            return Err(ERR_INVALID);
        }
        let mut list = Vec::new();
        for v in headers(ex, msg).values_bytes(name) {
            list.extend_from_slice(v);
            list.push(0);
        }
        Ok(copy_out(buf, &list))
    }))
}

pub fn header_names(msg: i32, buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        if !valid_msg(msg) {
            return Err(ERR_INVALID);
        }
        let h = headers(ex, msg);
        let mut list = Vec::new();
        for (i, (name, _)) in h.fields.iter().enumerate() {
            if !h.fields[..i]
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                list.extend_from_slice(name);
                list.push(0);
            }
        }
        Ok(copy_out(buf, &list))
    }))
}

/// The checks of a header write, in the Go host's order; value is empty for
/// a removal.
fn check_header_write(s: &mut State, msg: i32, name: &[u8], value: &[u8]) -> Result<(), i32> {
    let phase = s.phase;
    s.ex()?;
    let reserved = RESERVED
        .iter()
        .any(|r| r.as_bytes().eq_ignore_ascii_case(name));
    if !valid_msg(msg)
        || name.len() > MAX_HEADER_NAME_LEN as usize
        || !valid_token(name)
        || reserved
    {
        return Err(ERR_INVALID);
    }
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(ERR_TOO_LARGE);
    }
    if !valid_header_value(value) {
        return Err(ERR_INVALID);
    }
    if msg == MSG_REQUEST && phase != PHASE_REQUEST {
        return Err(ERR_PHASE);
    }
    Ok(())
}

pub fn header_set(msg: i32, name: &[u8], value: &[u8]) -> i32 {
    errno(with(|s| {
        check_header_write(s, msg, name, value)?;
        headers(s.ex()?, msg).set_bytes(name, value);
        Ok(0)
    }))
}

pub fn header_add(msg: i32, name: &[u8], value: &[u8]) -> i32 {
    errno(with(|s| {
        check_header_write(s, msg, name, value)?;
        headers(s.ex()?, msg).add_bytes(name, value);
        Ok(0)
    }))
}

pub fn header_remove(msg: i32, name: &[u8]) -> i32 {
    errno(with(|s| {
        check_header_write(s, msg, name, &[])?;
        headers(s.ex()?, msg).remove_bytes(name);
        Ok(0)
    }))
}

pub fn body_read(msg: i32, offset: i32, buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        if !valid_msg(msg) || offset < 0 {
            return Err(ERR_INVALID);
        }
        let b = body(ex, msg);
        let off = offset as usize;
        if off < b.len() {
            let n = buf.len().min(b.len() - off);
            buf[..n].copy_from_slice(&b[off..off + n]);
        }
        Ok(b.len() as i32)
    }))
}

pub fn body_set(msg: i32, data: &[u8]) -> i32 {
    errno(with(|s| {
        let (phase, max) = (s.phase, s.max_body);
        let ex = s.ex()?;
        if !valid_msg(msg) {
            return Err(ERR_INVALID);
        }
        if data.len() > max {
            return Err(ERR_TOO_LARGE);
        }
        if msg == MSG_REQUEST && phase != PHASE_REQUEST {
            return Err(ERR_PHASE);
        }
        *body(ex, msg) = data.to_vec();
        Ok(0)
    }))
}

pub fn value_get(key: &[u8], buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        let v = ex
            .values
            .iter()
            .find(|v| v.key == key)
            .ok_or(ERR_NOT_FOUND)?;
        Ok(copy_out(buf, &v.value))
    }))
}

pub fn value_set(key: &[u8], value: &[u8], flags: i32) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        if flags & !VALUE_FORWARD != 0 {
            return Err(ERR_INVALID);
        }
        let forward = flags & VALUE_FORWARD != 0;
        // Forwarded values reach the origin: keep them to what a header
        // could carry.
        if forward && (!valid_token(key) || !valid_header_value(value)) {
            return Err(ERR_INVALID);
        }
        if key.len() > MAX_VALUE_KEY_LEN as usize || value.len() > MAX_VALUE_LEN as usize {
            return Err(ERR_TOO_LARGE);
        }
        if let Some(v) = ex.values.iter_mut().find(|v| v.key == key) {
            v.value = value.to_vec();
            v.forward = forward;
            return Ok(0);
        }
        if ex.values.len() >= MAX_VALUES as usize {
            return Err(ERR_TOO_LARGE);
        }
        ex.values.push(Value {
            key: key.to_vec(),
            value: value.to_vec(),
            forward,
        });
        Ok(0)
    }))
}

pub fn cache_lookup(key: &[u8], buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        s.ex()?;
        let now = s.now();
        let e = s.entry(key)?;
        if buf.len() >= CACHE_INFO_SIZE as usize {
            // Both rounded toward zero from nanoseconds, as Go's Duration.Milliseconds.
            let age_ns = now - e.stored_ns;
            buf[..8].copy_from_slice(&(age_ns / 1_000_000).to_le_bytes());
            buf[8..16]
                .copy_from_slice(&((e.ttl_ms * 1_000_000 - age_ns) / 1_000_000).to_le_bytes());
            copy_out(&mut buf[16..], &e.meta);
        }
        Ok(CACHE_INFO_SIZE + e.meta.len() as i32)
    }))
}

pub fn cache_store(key: &[u8], meta: &[u8], ttl_ms: i64, stale_ms: i64, tags: &[u8]) -> i32 {
    errno(with(|s| {
        s.ex()?;
        if s.cache.is_none() {
            return Err(ERR_UNAVAILABLE);
        }
        if ttl_ms < 0
            || stale_ms < 0
            || ttl_ms > MAX_CACHE_MS
            || stale_ms > MAX_CACHE_MS
            || key.is_empty()
        {
            return Err(ERR_INVALID);
        }
        if key.len() > MAX_CACHE_KEY_LEN as usize || meta.len() > MAX_CACHE_META_LEN as usize {
            return Err(ERR_TOO_LARGE);
        }
        let resp = s.ex()?.resp.clone();
        if !(200..=599).contains(&resp.status) {
            return Err(ERR_INVALID); // a response without a status is no response to serve
        }
        let mut tag_list = Vec::new();
        for t in Items::new(tags) {
            if tag_list.len() == MAX_TAGS as usize {
                return Err(ERR_TOO_LARGE);
            }
            if t.is_empty() {
                return Err(ERR_INVALID);
            }
            tag_list.push(t.to_vec());
        }
        let stored_ns = s.now();
        let cache = s.cache.as_mut().ok_or(ERR_UNAVAILABLE)?;
        cache.retain(|e| e.key != key);
        cache.push(Entry {
            key: key.to_vec(),
            resp,
            meta: meta.to_vec(),
            tags: tag_list,
            stored_ns,
            ttl_ms,
            stale_ms,
        });
        Ok(0)
    }))
}

pub fn cache_serve(key: &[u8]) -> i32 {
    errno(with(|s| {
        s.ex()?;
        let resp = s.entry(key)?.resp.clone();
        let status = i32::from(resp.status);
        s.ex()?.resp = resp;
        Ok(status)
    }))
}

pub fn cache_purge(kind: i32, r#match: &[u8]) -> i32 {
    errno(with(|s| {
        s.ex()?;
        let cache = s.cache.as_mut().ok_or(ERR_UNAVAILABLE)?;
        let before = cache.len();
        match kind {
            PURGE_KEY => cache.retain(|e| e.key != r#match),
            PURGE_TAG => cache.retain(|e| !e.tags.iter().any(|t| t == r#match)),
            _ => return Err(ERR_INVALID),
        }
        Ok((before - cache.len()) as i32)
    }))
}

/// Keeps a copy of the request and its values, which `testing` revalidates
/// once the exchange is done. Natively no two run at once, so only a second
/// call in one request is skipped.
pub fn cache_revalidate(key: &[u8]) -> i32 {
    errno(with(|s| {
        if s.phase != PHASE_REQUEST {
            return Err(ERR_PHASE);
        }
        if s.cache.is_none() {
            return Err(ERR_UNAVAILABLE);
        }
        if key.is_empty() {
            return Err(ERR_INVALID);
        }
        if key.len() > MAX_CACHE_KEY_LEN as usize {
            return Err(ERR_TOO_LARGE);
        }
        let ex = s.ex()?;
        if ex.revalidation.is_some() {
            return Ok(0);
        }
        ex.revalidation = Some((ex.req.clone(), ex.values.clone()));
        Ok(1)
    }))
}

/// Natively ErrUnavailable after the argument checks: the RFC 9111 engine
/// (package wasm/abi/httpcache) is Go code in the host.
pub fn cache_request(name: &[u8]) -> i32 {
    errno(with(|s| {
        if s.phase != PHASE_REQUEST {
            return Err(ERR_PHASE);
        }
        if name.len() > MAX_VALUE_KEY_LEN as usize || !valid_token(name) {
            return Err(ERR_INVALID);
        }
        let method = &s.ex()?.req.method;
        if method != "GET" && method != "HEAD" {
            return Err(ERR_INVALID);
        }
        Err(ERR_UNAVAILABLE)
    }))
}

/// Natively ErrUnavailable after the argument checks, as cache_request.
pub fn cache_response(name: &[u8], options: i32) -> i32 {
    const OPTIONS: i32 = 1 | 2; // StripCDN, StripSetCookie
    errno(with(|s| {
        if s.phase != PHASE_RESPONSE {
            return Err(ERR_PHASE);
        }
        if name.len() > MAX_VALUE_KEY_LEN as usize || !valid_token(name) || options & !OPTIONS != 0
        {
            return Err(ERR_INVALID);
        }
        Err(ERR_UNAVAILABLE)
    }))
}

pub fn range_apply(value: &[u8]) -> i32 {
    errno(with(|s| {
        let ex = s.ex()?;
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(ERR_TOO_LARGE);
        }
        let status = i32::from(ex.resp.status);
        let size = ex.resp.body.len() as i64;
        if status != 200 || size == 0 {
            // Only a whole representation has ranges (RFC 9110 §14.1.1).
            return Ok(status);
        }
        let (range, status) = match parse_range(value, size) {
            Range::Satisfiable(first, last) => {
                ex.resp.body = ex.resp.body[first as usize..=last as usize].to_vec();
                (std::format!("bytes {}-{}/{}", first, last, size), 206)
            }
            Range::Unsatisfiable => {
                ex.resp.body.clear();
                (std::format!("bytes */{}", size), 416)
            }
            Range::Ignore => return Ok(status),
        };
        ex.resp
            .headers
            .set_bytes(b"Content-Range", range.as_bytes());
        ex.resp.status = status as u16;
        Ok(status)
    }))
}

#[derive(Debug, PartialEq)]
enum Range {
    Satisfiable(i64, i64),
    Unsatisfiable,
    Ignore,
}

/// Parses a Range field value against a body of size bytes as the Go host's
/// parseRange does: one byte range, or Ignore.
fn parse_range(v: &[u8], size: i64) -> Range {
    const UNIT: &[u8] = b"bytes=";
    if v.len() < UNIT.len() || !v[..UNIT.len()].eq_ignore_ascii_case(UNIT) {
        return Range::Ignore;
    }
    let ows = |v: &[u8], mut i: usize| {
        while i < v.len() && (v[i] == b' ' || v[i] == b'\t') {
            i += 1;
        }
        i
    };
    let mut found = None;
    let mut i = UNIT.len();
    loop {
        i = ows(v, i);
        if i < v.len() && v[i] != b',' {
            let (f, next, has_first) = digits(v, i);
            if next >= v.len() || v[next] != b'-' {
                return Range::Ignore;
            }
            let (l, next, has_last) = digits(v, next + 1);
            i = next;
            let r = match (has_first, has_last) {
                (true, true) if l < f => return Range::Ignore,
                (true, _) if f >= size => Range::Unsatisfiable,
                (true, true) => Range::Satisfiable(f, l.min(size - 1)),
                (true, false) => Range::Satisfiable(f, size - 1),
                (false, true) if l == 0 => Range::Unsatisfiable,
                (false, true) => Range::Satisfiable((size - l).max(0), size - 1),
                (false, false) => return Range::Ignore,
            };
            if found.is_some() {
                return Range::Ignore; // several ranges: send the whole
            }
            found = Some(r);
            i = ows(v, i);
        }
        if i >= v.len() {
            break;
        }
        if v[i] != b',' {
            return Range::Ignore;
        }
        i += 1;
    }
    found.unwrap_or(Range::Ignore)
}

/// Reads 1*DIGIT at v[i..], saturating far past any body size.
fn digits(v: &[u8], mut i: usize) -> (i64, usize, bool) {
    const LIMIT: i64 = 1 << 62;
    let start = i;
    let mut n: i64 = 0;
    while i < v.len() && v[i].is_ascii_digit() {
        n = if n <= LIMIT / 10 {
            n * 10 + i64::from(v[i] - b'0')
        } else {
            LIMIT
        };
        i += 1;
    }
    (n.min(LIMIT), i, i > start)
}

pub fn ratelimit_take(
    key: &[u8],
    limit: i32,
    period_ms: i64,
    burst: i32,
    cost: i32,
    result: &mut [u8],
) -> i32 {
    errno(with(|s| {
        s.ex()?;
        if limit <= 0
            || period_ms <= 0
            || period_ms > MAX_CACHE_MS
            || burst <= 0
            || cost < 0
            || result.len() < RATE_RESULT_SIZE as usize
        {
            return Err(ERR_INVALID);
        }
        if key.len() > MAX_RATE_KEY_LEN as usize {
            return Err(ERR_TOO_LARGE);
        }
        let now = s.now();
        let (allowed, r) = gcra(&mut s.rates, key, now, limit, period_ms, burst, cost);
        for (out, v) in result.chunks_mut(8).zip(r) {
            out.copy_from_slice(&v.to_le_bytes());
        }
        Ok(i32::from(allowed))
    }))
}

/// The GCRA of wasm/host/ratelimit.go: per key, the theoretical arrival
/// time of the next unit. Returns whether the take passed and the
/// RateResult (remaining, reset_ms, retry_after_ms).
fn gcra(
    rates: &mut Vec<(Vec<u8>, i64)>,
    key: &[u8],
    now: i64,
    limit: i32,
    period_ms: i64,
    burst: i32,
    cost: i32,
) -> (bool, [i64; 3]) {
    let interval = (period_ms * 1_000_000 / i64::from(limit)).max(1);
    let tolerance = interval.saturating_mul(i64::from(burst));
    // A key whose TAT has passed is back at its full burst, like an absent one.
    rates.retain(|(_, tat)| *tat > now);
    let at = rates.iter().position(|(k, _)| k == key);
    let tat = at.map_or(now, |i| rates[i].1.max(now));
    let next = tat.saturating_add(interval.saturating_mul(i64::from(cost)));
    if next - now > tolerance {
        let retry = ceil_ms(next - tolerance - now).max(1);
        return (
            false,
            [
                (tolerance - (tat - now)) / interval,
                ceil_ms(tat - now),
                retry,
            ],
        );
    }
    match at {
        Some(i) => rates[i].1 = next,
        None if cost > 0 => rates.push((key.to_vec(), next)),
        None => {} // a peek at an absent key leaves it absent
    }
    (
        true,
        [
            (tolerance - (next - now)) / interval,
            ceil_ms(next - now),
            0,
        ],
    )
}

fn ceil_ms(ns: i64) -> i64 {
    if ns <= 0 {
        0
    } else {
        (ns + 999_999) / 1_000_000
    }
}

/// HMAC keys in raw format are what the native host verifies; the other
/// algorithms need RSA, ECDSA or Ed25519, and JWK and PKIX a parser: those
/// are ErrUnavailable.
pub fn key_register(alg: i32, format: i32, key: &[u8]) -> i32 {
    errno(with(|s| {
        if s.phase != PHASE_CONFIGURE {
            return Err(ERR_PHASE);
        }
        if !(ALG_HS256..=ALG_ED_DSA).contains(&alg) || !(KEY_RAW..=KEY_JWK).contains(&format) {
            return Err(ERR_INVALID);
        }
        let min = match alg {
            ALG_HS256 => 32,
            ALG_HS384 => 48,
            ALG_HS512 => 64,
            _ => return Err(ERR_UNAVAILABLE),
        };
        if format != KEY_RAW {
            return Err(ERR_UNAVAILABLE);
        }
        if key.len() < min {
            return Err(ERR_INVALID); // shorter than the hash output (RFC 7518 section 3.2)
        }
        if let Some(i) = s.keys.iter().position(|(a, k)| *a == alg && k == key) {
            return Ok(i as i32);
        }
        if s.keys.len() >= MAX_KEYS as usize {
            return Err(ERR_TOO_LARGE);
        }
        s.keys.push((alg, key.to_vec()));
        Ok(s.keys.len() as i32 - 1)
    }))
}

pub fn verify(key: i32, msg: &[u8], sig: &[u8]) -> i32 {
    errno(with(|s| {
        let (alg, secret) = usize::try_from(key)
            .ok()
            .and_then(|i| s.keys.get(i))
            .ok_or(ERR_NOT_FOUND)?;
        let mac = match *alg {
            ALG_HS256 => sha2::hmac::<sha2::Sha256>(secret, msg),
            ALG_HS384 => sha2::hmac::<sha2::Sha384>(secret, msg),
            _ => sha2::hmac::<sha2::Sha512<64>>(secret, msg),
        };
        // Constant time, as a habit: a test host has nobody to time it.
        let diff = if sig.len() == mac.len() {
            mac.iter().zip(sig).fold(0, |d, (a, b)| d | (a ^ b))
        } else {
            1
        };
        Ok(i32::from(diff == 0))
    }))
}

pub fn digest(alg: i32, msg: &[u8], buf: &mut [u8]) -> i32 {
    errno(with(|s| {
        let d = match alg {
            DIGEST_SHA256 => sha2::sum::<sha2::Sha256>(msg),
            DIGEST_SHA384 => sha2::sum::<sha2::Sha384>(msg),
            DIGEST_SHA512 => sha2::sum::<sha2::Sha512<64>>(msg),
            DIGEST_KEYED => sha2::hmac::<sha2::Sha256>(&s.keyed_secret, msg),
            _ => return Err(ERR_INVALID),
        };
        Ok(copy_out(buf, &d))
    }))
}

/// Natively no policy registers (ErrUnavailable), so every handle
/// token_verify gets is unknown.
pub fn token_policy(_spec: &[u8]) -> i32 {
    with(|s| {
        if s.phase != PHASE_CONFIGURE {
            ERR_PHASE
        } else {
            ERR_UNAVAILABLE
        }
    })
}

pub fn token_verify(_policy: i32, _token: &[u8], _buf: &mut [u8]) -> i32 {
    with(|_| ERR_NOT_FOUND)
}

pub fn time_now() -> i64 {
    with(|s| s.now())
}

pub fn random_fill(buf: &mut [u8]) -> i32 {
    with(|_| fill_random(buf));
    0
}

/// Fills buf from the system's random source (/dev/urandom). Where there is
/// none (Windows), it falls back to std's randomly keyed hasher: unique per
/// call, not cryptographic, enough for a test.
pub(crate) fn fill_random(buf: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    use std::io::Read;
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        if f.read_exact(buf).is_ok() {
            return;
        }
    }
    let keys = std::collections::hash_map::RandomState::new();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut h = keys.build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
    }
}

pub fn log(level: i32, msg: &[u8], attrs: &[u8]) -> i32 {
    errno(with(|s| {
        if msg.len() + attrs.len() > MAX_LOG_LEN as usize {
            return Err(ERR_TOO_LARGE);
        }
        let list: Vec<&[u8]> = Items::new(attrs).collect();
        if list.len() % 2 != 0 {
            return Err(ERR_INVALID);
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut rec = LogRecord {
            level,
            message: text(msg),
            attrs: list
                .chunks(2)
                .map(|kv| (text(kv[0]), text(kv[1])))
                .collect(),
        };
        if let Some(ex) = &s.ex {
            if !ex.req.id.is_empty() {
                rec.attrs
                    .push((String::from("request_id"), ex.req.id.clone()));
            }
        }
        if s.echo_logs {
            std::eprintln!("{}", rec);
        }
        s.logs.push(rec);
        Ok(0)
    }))
}

fn valid_metric_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            first.is_ascii_lowercase()
                && rest.len() <= 63
                && rest
                    .iter()
                    .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        }
        None => false,
    }
}

pub fn metric_define(kind: i32, name: &[u8]) -> i32 {
    errno(with(|s| {
        if s.phase != PHASE_CONFIGURE {
            return Err(ERR_PHASE);
        }
        let kind = match kind {
            METRIC_COUNTER => MetricKind::Counter,
            METRIC_GAUGE => MetricKind::Gauge,
            METRIC_HISTOGRAM => MetricKind::Histogram,
            _ => return Err(ERR_INVALID),
        };
        if !valid_metric_name(name) {
            return Err(ERR_INVALID);
        }
        if let Some(i) = s.metrics.iter().position(|m| m.name.as_bytes() == name) {
            return if s.metrics[i].kind == kind {
                Ok(i as i32)
            } else {
                Err(ERR_INVALID)
            };
        }
        if s.metrics.len() >= MAX_METRICS as usize {
            return Err(ERR_TOO_LARGE);
        }
        // Validated as ASCII above.
        let name = String::from_utf8_lossy(name).into_owned();
        s.metrics.push(Metric {
            name,
            kind,
            value: 0.0,
            observations: Vec::new(),
        });
        Ok(s.metrics.len() as i32 - 1)
    }))
}

pub fn metric_record(metric: i32, value: f64) -> i32 {
    errno(with(|s| {
        let m = usize::try_from(metric)
            .ok()
            .and_then(|i| s.metrics.get_mut(i))
            .ok_or(ERR_NOT_FOUND)?;
        if !value.is_finite() {
            return Err(ERR_INVALID);
        }
        match m.kind {
            MetricKind::Counter if value < 0.0 => return Err(ERR_INVALID),
            MetricKind::Counter => m.value += value,
            MetricKind::Gauge => m.value = value,
            MetricKind::Histogram => m.observations.push(value),
        }
        Ok(0)
    }))
}

#[cfg(test)]
mod tests;
