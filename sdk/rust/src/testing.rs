//! Runs a plugin natively, in a plain `cargo test`, against an in-memory
//! host: the same phases, header rules, values and errors as the edge,
//! minus the Wasm engine (the Rust counterpart of Go's sdk/sdktest). Use it
//! for fast unit tests of plugin logic; test the built `.wasm` with Go's
//! wasm/wasmtest or `wedgectl plugin run`.
//!
//! ```
//! use wedge::testing::{Host, HttpRequest, HttpResponse};
//! use wedge::{Action, Error, Features, Plugin, Request, Response};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn configure(&mut self, _config: &[u8]) -> Result<Features, Error> {
//!         Ok(Features::REQUEST)
//!     }
//!     fn on_request(&mut self, req: Request, resp: Response) -> Action {
//!         if req.path_is(b"/hello") {
//!             resp.answer_text(200, b"Hello!")
//!         } else {
//!             Action::Continue
//!         }
//!     }
//! }
//!
//! let mut host = Host::new(Hello, b"");
//! host.set_origin(|_req| HttpResponse::new(404).body(b"from origin"));
//! let out = host.request(HttpRequest::get("/hello"));
//! assert!(out.answered);
//! assert_eq!(out.response.body_str(), "Hello!\n");
//! assert_eq!(
//!     out.response.headers.get("content-type").as_deref(),
//!     Some("text/plain; charset=utf-8")
//! );
//! let out = host.request(HttpRequest::get("/other").header("Accept", "*/*"));
//! assert!(!out.answered);
//! assert_eq!(out.response.status, 404);
//! ```
//!
//! [`Host::request`] runs one exchange as the edge runs a chain of one
//! plugin (wasm/host/flow.go): the request phase; unless it answered, the
//! origin (a function the test sets, 200 with no body by default) with the
//! header fields the plugin left on an answer it did not send added to the
//! origin's response (wasm/abi/README.md section 4); then the response
//! phase; then the revalidation the request phase asked for, if any. A
//! failed phase gets the failure policy: by default an answer 503 (fail
//! closed), or with [`Host::fail_open`] as if it had continued; the
//! [`Outcome`] says why in `request_error` or `response_error`.
//!
//! The native host is held to the real one by a probe (src/native/probe.rs)
//! of over 200 host calls, whose transcript sdk/rust's Go test compares,
//! line by line, with the same probe's as Wasm in the edge's host.
//!
//! Every host function follows wasm/abi/README.md with the edge's checks in
//! the edge's order (phases, read-only fields, statuses 200-599, header
//! names and values, forbidden headers, lists, offsets, value rules,
//! limits). Where the native host differs:
//!
//! - `cache_request` and `cache_response` check their phase and arguments,
//!   then return `ErrUnavailable`: the RFC 9111 engine (wasm/abi/httpcache)
//!   is Go code in the host. A plugin built on them is tested as Wasm or
//!   in the edge. `cache_revalidate` works, with its revalidation run
//!   before [`Host::request`] returns; as none ever runs while another
//!   does, it returns 0 only when the request asked for one already.
//! - Crypto: `key_register` takes HMAC keys (`AlgHS256`, `AlgHS384`,
//!   `AlgHS512`) in `KeyRaw` format, which `verify` checks; any other valid
//!   algorithm or format is `ErrUnavailable`. `digest` computes every
//!   algorithm, `DigestKeyed` under a secret drawn per [`Host`].
//!   `token_policy` is `ErrUnavailable` (in configure), so `token_verify`
//!   finds no policy (`ErrNotFound`).
//! - The cache is a list without a size bound or eviction; an entry
//!   expires once its TTL and stale window have passed on the host clock.
//!   The rate limiter is the edge's GCRA on the host clock, without its
//!   bound on keys. Both belong to one [`Host`].
//! - The host clock (`time_now`, cache ages, rate limits) is the system
//!   clock until [`Host::set_time`] or [`Host::advance`] fixes it.
//!   `random_fill` reads /dev/urandom; where there is none (Windows) it
//!   falls back to std's randomly keyed hasher, which is not cryptographic.
//! - Logs are kept as [`LogRecord`]s (all levels, with `request_id` in a
//!   request) and echoed to stderr, which `cargo test` shows for a failing
//!   test; metrics are kept as [`Metric`]s, not exported.
//! - One plugin value serves every phase. In the edge the phases of one
//!   request may run on different instances: per-request state still
//!   belongs in request values, and a test passing here with state in
//!   `self` proves nothing about that.
//! - A panic in the plugin is not a trap turned into the failure policy:
//!   it unwinds into the test, with its message and backtrace.
//!
//! The host is per thread (`cargo test` runs tests on several threads, and
//! each [`Host`] installs itself only for the length of one guest call), so
//! tests may run in parallel. A host function called natively outside a
//! [`Host`] panics.

extern crate std;

use std::borrow::ToOwned;
use std::boxed::Box;
use std::fmt;
use std::string::String;
use std::vec::Vec;

use crate::abi::*;
use crate::native::{self, Exchange, State};
use crate::{exports, Plugin};

/// An ordered, multi-valued list of header fields. Names keep the case they
/// were written with and compare case-insensitively; values are bytes (a
/// plugin may set any byte but controls).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers {
    pub(crate) fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Headers {
    /// The first value of name, as text (lossily decoded), if present.
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name.as_bytes()).map(lossy)
    }

    /// The first value of name, if present.
    pub fn get_bytes(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &v[..])
    }

    /// Every value of name, in order, as text.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.values_bytes(name.as_bytes()).map(lossy).collect()
    }

    pub(crate) fn values_bytes<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &v[..])
    }

    /// Appends a field.
    pub fn add(&mut self, name: &str, value: &str) {
        self.add_bytes(name.as_bytes(), value.as_bytes());
    }

    /// Replaces every value of name with value, at the position of the first.
    pub fn set(&mut self, name: &str, value: &str) {
        self.set_bytes(name.as_bytes(), value.as_bytes());
    }

    /// Removes every value of name.
    pub fn remove(&mut self, name: &str) {
        self.remove_bytes(name.as_bytes());
    }

    /// The fields in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().map(|(n, v)| (&n[..], &v[..]))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub(crate) fn add_bytes(&mut self, name: &[u8], value: &[u8]) {
        self.fields.push((name.to_vec(), value.to_vec()));
    }

    pub(crate) fn set_bytes(&mut self, name: &[u8], value: &[u8]) {
        match self
            .fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.fields[i].1 = value.to_vec();
                let mut at = 0;
                self.fields.retain(|(n, _)| {
                    at += 1;
                    at <= i + 1 || !n.eq_ignore_ascii_case(name)
                });
            }
            None => self.add_bytes(name, value),
        }
    }

    pub(crate) fn remove_bytes(&mut self, name: &[u8]) {
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A client's request as the plugin sees it, and as it leaves for the
/// origin after the request phase changed it.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// `FieldMethod`: `GET` by default.
    pub method: String,
    /// `FieldScheme`: `http` by default.
    pub scheme: String,
    /// `FieldHost`: `localhost` by default.
    pub host: String,
    /// `FieldPath`: as received, percent-encoded, without the query.
    pub path: String,
    /// `FieldRawQuery`: without `?`.
    pub query: String,
    /// `FieldProto`: `HTTP/1.1` by default.
    pub proto: String,
    /// `FieldClientAddr`: `127.0.0.1:40000` by default.
    pub client_addr: String,
    /// `FieldRequestID`: [`Host::request`] numbers requests that have none.
    pub id: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request for target (a path with an optional `?query`).
    pub fn new(method: &str, target: &str) -> HttpRequest {
        let (path, query) = match target.find('?') {
            Some(i) => (&target[..i], &target[i + 1..]),
            None => (target, ""),
        };
        HttpRequest {
            method: method.to_owned(),
            scheme: "http".to_owned(),
            host: "localhost".to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            proto: "HTTP/1.1".to_owned(),
            client_addr: "127.0.0.1:40000".to_owned(),
            id: String::new(),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    /// A GET for target.
    pub fn get(target: &str) -> HttpRequest {
        HttpRequest::new("GET", target)
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        self.headers.add(name, value);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &[u8]) -> HttpRequest {
        self.body = body.to_vec();
        self
    }

    /// Sets the host (`FieldHost`).
    pub fn host(mut self, host: &str) -> HttpRequest {
        self.host = host.to_owned();
        self
    }

    /// Sets the client's address (`FieldClientAddr`).
    pub fn client_addr(mut self, addr: &str) -> HttpRequest {
        self.client_addr = addr.to_owned();
        self
    }

    pub(crate) fn field(&self, f: i32) -> Option<&String> {
        Some(match f {
            FIELD_METHOD => &self.method,
            FIELD_SCHEME => &self.scheme,
            FIELD_HOST => &self.host,
            FIELD_PATH => &self.path,
            FIELD_RAW_QUERY => &self.query,
            FIELD_PROTO => &self.proto,
            FIELD_CLIENT_ADDR => &self.client_addr,
            FIELD_REQUEST_ID => &self.id,
            _ => return None,
        })
    }

    pub(crate) fn field_mut(&mut self, f: i32) -> Option<&mut String> {
        Some(match f {
            FIELD_METHOD => &mut self.method,
            FIELD_HOST => &mut self.host,
            FIELD_PATH => &mut self.path,
            FIELD_RAW_QUERY => &mut self.query,
            _ => return None,
        })
    }
}

/// A response: the origin's (set by the test), an answer a plugin built, or
/// what the client gets. Status 0 is no status (an answer not begun).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with status and nothing else.
    pub fn new(status: u16) -> HttpResponse {
        HttpResponse {
            status,
            ..HttpResponse::default()
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.add(name, value);
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &[u8]) -> HttpResponse {
        self.body = body.to_vec();
        self
    }

    /// The body as text (lossily decoded).
    pub fn body_str(&self) -> String {
        lossy(&self.body)
    }
}

/// A request-scoped value (value_set).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Set with `ValueForward`: the origin gets it with the request.
    pub forward: bool,
}

/// One record the plugin logged.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// `LevelDebug` -4, `LevelInfo` 0, `LevelWarn` 4, `LevelError` 8.
    pub level: i32,
    pub message: String,
    /// The plugin's attributes in order, then `request_id` in a request.
    pub attrs: Vec<(String, String)>,
}

impl LogRecord {
    /// The value of attribute key.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &v[..])
    }
}

impl fmt::Display for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            l if l < LEVEL_INFO => "DEBUG",
            l if l < LEVEL_WARN => "INFO",
            l if l < LEVEL_ERROR => "WARN",
            _ => "ERROR",
        };
        write!(f, "{} {:?}", level, self.message)?;
        for (k, v) in &self.attrs {
            write!(f, " {}={:?}", k, v)?;
        }
        Ok(())
    }
}

/// The kind of a metric (metric_define).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric the plugin defined, with what it recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    /// A counter's total or a gauge's last value.
    pub value: f64,
    /// A histogram's observations, in order.
    pub observations: Vec<f64>,
}

/// What one request came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The request as the request phase left it: what the origin got,
    /// unless the plugin answered.
    pub request: HttpRequest,
    /// What the client gets.
    pub response: HttpResponse,
    /// The request phase answered (or failed closed): the origin was not
    /// asked.
    pub answered: bool,
    /// The request-scoped values, in the order first set.
    pub values: Vec<Value>,
    /// Why the request phase failed, if it did.
    pub request_error: Option<String>,
    /// Why the response phase failed, if it did.
    pub response_error: Option<String>,
    /// The background revalidation the request phase asked for
    /// (cache_revalidate), run after the exchange as the edge runs it once
    /// the response is written: the copied request, the origin's response
    /// to it and the response phase's changes. None when none ran.
    pub background: Option<Box<Outcome>>,
}

impl Outcome {
    /// The request value under key.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|v| v.key == key.as_bytes())
            .map(|v| &v.value[..])
    }
}

/// A plugin configured against an in-memory host.
pub struct Host<P: Plugin> {
    plugin: P,
    state: State,
    features: i32,
    origin: Box<dyn FnMut(&HttpRequest) -> HttpResponse>,
    fail_open: bool,
    requests: u64,
}

impl<P: Plugin> fmt::Debug for Host<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl<P: Plugin> Host<P> {
    /// Configures plugin with config and returns its host; panics with the
    /// plugin's message if configure fails.
    pub fn new(plugin: P, config: &[u8]) -> Host<P> {
        match Host::try_new(plugin, config) {
            Ok(h) => h,
            Err(msg) => panic!("wedge::testing: configure failed: {}", msg),
        }
    }

    /// Configures plugin with config and returns its host, or the message
    /// the plugin failed configure with.
    pub fn try_new(mut plugin: P, config: &[u8]) -> Result<Host<P>, String> {
        let mut keyed_secret = [0; 32];
        native::fill_random(&mut keyed_secret);
        let mut state = State {
            config: config.to_vec(),
            cache: Some(Vec::new()),
            keyed_secret,
            max_body: native::DEFAULT_MAX_BODY,
            echo_logs: true,
            ..State::default()
        };
        let features = native::call(&mut state, PHASE_CONFIGURE, || {
            exports::configure(&mut plugin)
        });
        if features < 0 {
            return Err(lossy(&state.error));
        }
        Ok(Host {
            plugin,
            state,
            features,
            origin: Box::new(|_| HttpResponse::new(200)),
            fail_open: false,
            requests: 0,
        })
    }

    /// The feature mask configure returned.
    pub fn features(&self) -> i32 {
        self.features
    }

    /// The plugin, to inspect.
    pub fn plugin(&mut self) -> &mut P {
        &mut self.plugin
    }

    /// Sets what answers the requests the plugin does not answer.
    pub fn set_origin(&mut self, origin: impl FnMut(&HttpRequest) -> HttpResponse + 'static) {
        self.origin = Box::new(origin);
    }

    /// Makes a failed phase continue, as a fail-open plugin does; by
    /// default a failure answers 503, the edge's default policy.
    pub fn fail_open(&mut self, open: bool) {
        self.fail_open = open;
    }

    /// Fixes the host clock at unix_ns.
    pub fn set_time(&mut self, unix_ns: i64) {
        self.state.clock = Some(unix_ns);
    }

    /// Moves the host clock ms milliseconds on (fixing it, if it was the
    /// system clock, at its reading plus ms).
    pub fn advance(&mut self, ms: i64) {
        self.state.clock = Some(self.state.now() + ms * 1_000_000);
    }

    /// Takes the cache away: the cache functions return `ErrUnavailable`.
    pub fn without_cache(&mut self) {
        self.state.cache = None;
    }

    /// Sets the body limit (8 MiB by default).
    pub fn set_max_body(&mut self, bytes: usize) {
        self.state.max_body = bytes;
    }

    /// Stops echoing log records to stderr; they are still kept.
    pub fn quiet(&mut self) {
        self.state.echo_logs = false;
    }

    /// The response cached under key, as cache_serve would serve it now.
    pub fn cached(&self, key: &[u8]) -> Option<&HttpResponse> {
        let e = self.state.cache.as_ref()?.iter().find(|e| e.key == key)?;
        if e.live(self.state.now()) {
            Some(&e.resp)
        } else {
            None
        }
    }

    /// Everything the plugin logged so far.
    pub fn logs(&self) -> &[LogRecord] {
        &self.state.logs
    }

    /// Takes the log records, leaving none.
    pub fn take_logs(&mut self) -> Vec<LogRecord> {
        core::mem::take(&mut self.state.logs)
    }

    /// The plugin's metrics, in order of definition.
    pub fn metrics(&self) -> &[Metric] {
        &self.state.metrics
    }

    /// The metric called name.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.state.metrics.iter().find(|m| m.name == name)
    }

    /// Runs one request through the plugin: request phase, the origin
    /// unless the plugin answered, response phase; then the background
    /// revalidation the request phase asked for (cache_revalidate), if it
    /// answered: the origin with the copied request and the response phase
    /// on its answer ([`Outcome::background`]).
    pub fn request(&mut self, mut req: HttpRequest) -> Outcome {
        if req.id.is_empty() {
            self.requests += 1;
            req.id = std::format!("native-{}", self.requests);
        }
        self.state.ex = Some(Exchange {
            req,
            resp: HttpResponse::default(),
            values: Vec::new(),
            revalidation: None,
        });
        let mut answered = false;
        let mut request_error = None;
        if self.features & FEATURE_REQUEST != 0 {
            let plugin = &mut self.plugin;
            let act = native::call(&mut self.state, PHASE_REQUEST, || {
                exports::on_request(plugin)
            });
            let status = self.exchange().resp.status;
            request_error = match act {
                ACTION_CONTINUE => None,
                ACTION_ANSWER if status != 0 => {
                    answered = true;
                    None
                }
                ACTION_ANSWER => Some("request phase answered without setting a status".to_owned()),
                _ => Some(std::format!(
                    "request phase failed (action {}): {}",
                    act,
                    lossy(&self.state.error)
                )),
            };
            if request_error.is_some() && !self.fail_open {
                self.fail_closed();
                answered = true;
            }
        }
        if !answered {
            // The fields of an answer the plugin did not send are the
            // client's, added at the plugin's position (section 4).
            let pending = core::mem::take(&mut self.exchange().resp.headers);
            self.ask_origin();
            self.exchange().resp.headers.fields.extend(pending.fields);
        }
        let response_error = self.response_phase();
        let ex = self.state.ex.take().expect("exchange");
        // The ABI runs a revalidation only for a request phase that answered.
        let background = match ex.revalidation {
            Some((req, values)) if answered => Some(Box::new(self.revalidate(req, values))),
            _ => None,
        };
        Outcome {
            request: ex.req,
            response: ex.resp,
            answered,
            values: ex.values,
            request_error,
            response_error,
            background,
        }
    }

    /// Runs a background revalidation: the origin, then the response phase.
    fn revalidate(&mut self, req: HttpRequest, values: Vec<Value>) -> Outcome {
        self.state.ex = Some(Exchange {
            req,
            resp: HttpResponse::default(),
            values,
            revalidation: None,
        });
        self.ask_origin();
        let response_error = self.response_phase();
        let ex = self.state.ex.take().expect("exchange");
        Outcome {
            request: ex.req,
            response: ex.resp,
            answered: false,
            values: ex.values,
            request_error: None,
            response_error,
            background: None,
        }
    }

    /// Sends the exchange's request to the origin.
    fn ask_origin(&mut self) {
        let ex = self.state.ex.as_mut().expect("exchange");
        ex.resp = (self.origin)(&ex.req);
    }

    /// Runs the response phase, if the plugin has one, with the failure
    /// policy; returns why it failed.
    fn response_phase(&mut self) -> Option<String> {
        if self.features & FEATURE_RESPONSE == 0 {
            return None;
        }
        let plugin = &mut self.plugin;
        let act = native::call(&mut self.state, PHASE_RESPONSE, || {
            exports::on_response(plugin)
        });
        if act == ACTION_CONTINUE {
            return None;
        }
        if !self.fail_open {
            self.fail_closed();
        }
        Some(std::format!(
            "response phase failed (action {}): {}",
            act,
            lossy(&self.state.error)
        ))
    }

    fn exchange(&mut self) -> &mut Exchange {
        self.state.ex.as_mut().expect("exchange")
    }

    /// Answers 503, the edge's default failure policy.
    fn fail_closed(&mut self) {
        self.exchange().resp = HttpResponse::new(503)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(b"Service Unavailable\n");
    }
}
