//! The ABI v1 conformance kit's guest in Rust: the same checks as the Go
//! guest (wasm/tck, plugin.go and token.go), with the same function names,
//! check texts, report format and configuration, over the raw host calls of
//! `wedge::hostcall` as the Go kit uses sdk/hostcall. wasm/tck's
//! TestConformanceWasmRust holds it to the standard of tcktest.Check and to
//! the Go kit's number of passing checks.
//!
//! The kit keeps its state across the phases of one request, so it runs in
//! a pool of one instance, as the Go kit does.

use std::cell::UnsafeCell;
use std::fmt;

use wedge::{abi, base64, hostcall, json};

mod request;
mod response;
mod sha256;
mod token;

// The fixture (wasm/tck/fixture.go); the Go side holds what the kit does to
// these values.
const METHOD: &str = "POST";
const SCHEME: &str = "https";
const HOST: &str = "tck.example";
const PATH: &str = "/a/b";
const RAW_QUERY: &str = "x=1&y=2";
const PROTO: &str = "HTTP/1.1";
const CLIENT_ADDR: &str = "192.0.2.1:4242";
const REQUEST_ID: &str = "tck-1";
const BODY: &str = r#"{"hello":"world"}"#;
const ANY_REQUEST_ID: &str = "*";
const ORIGIN_STATUS: i32 = 201;
const ORIGIN_BODY: &str = "origin body";
const REWRITTEN_PATH: &str = "/rewritten";
const REWRITTEN_METHOD: &str = "PUT";
const REQUEST_BODY: &str = "replaced body";
const FINAL_STATUS: i32 = 299;
const CACHE_KEY: &str = "tck-key";
const REVALIDATE_KEY: &str = "tck-reval";
const CACHE_META: &str = "tck-meta";
const FORWARD_KEY: &str = "tck.fwd";
const FORWARD_VALUE: &str = "alice";
const LOG_MESSAGE: &str = "tck log";
const MAX_BODY_SIZE: usize = 64 << 10;
const GAUGE_VALUE: f64 = -5.0;

/// The names of abi::ALG_*, by value (abi.AlgByName).
const ALG_NAMES: [&str; 12] =
    ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// One verification key of the config, registered.
struct RegKey {
    name: String,
    handle: i32,
    format: i32,
    key: Vec<u8>,
    msg: Vec<u8>,
    sig: Vec<u8>,
}

/// What the host assigns the request itself (tck.Assigned).
struct Assigned {
    scheme: String,
    client_addr: String,
    request_id: String,
}

/// The kit's state: the report so far, and what configure registered.
pub struct Kit {
    lines: Vec<String>,
    keys: Vec<RegKey>,
    counter: i32,
    gauge: i32,
    hist: i32,
    policy: i32,
    assigned: Assigned,
}

/// The one instance's kit. Wasm runs one export at a time on one thread
/// and the host never re-enters the guest, so each export holds the only
/// reference while it runs.
struct Slot(UnsafeCell<Kit>);

// SAFETY: see Slot; wasm32 has no threads here.
unsafe impl Sync for Slot {}

static KIT: Slot = Slot(UnsafeCell::new(Kit {
    lines: Vec::new(),
    keys: Vec::new(),
    counter: -1,
    gauge: -1,
    hist: -1,
    policy: -1,
    assigned: Assigned { scheme: String::new(), client_addr: String::new(), request_id: String::new() },
}));

fn kit() -> &'static mut Kit {
    // SAFETY: called once per export call, which the host never overlaps
    // (see Slot).
    unsafe { &mut *KIT.0.get() }
}

/// The ABI version marker; never called.
#[no_mangle]
pub extern "C" fn wedge_abi_v1() {}

#[no_mangle]
pub extern "C" fn wedge_configure() -> i32 {
    kit().configure();
    abi::FEATURE_REQUEST | abi::FEATURE_RESPONSE
}

#[no_mangle]
pub extern "C" fn wedge_on_request() -> i32 {
    kit().on_request();
    abi::ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn wedge_on_response() -> i32 {
    kit().on_response()
}

/// abi.ErrnoName.
fn errno_name(e: i32) -> String {
    match e {
        abi::ERR_NOT_FOUND => "ErrNotFound".into(),
        abi::ERR_INVALID => "ErrInvalid".into(),
        abi::ERR_PHASE => "ErrPhase".into(),
        abi::ERR_TOO_LARGE => "ErrTooLarge".into(),
        abi::ERR_UNAVAILABLE => "ErrUnavailable".into(),
        _ => format!("Errno({})", e),
    }
}

/// Calls a "buffer + limit" function with a buffer of n bytes; returns what
/// it filled and its result.
fn read(n: usize, call: impl FnOnce(&mut [u8]) -> i32) -> (Vec<u8>, i32) {
    let mut buf = vec![0; n];
    let r = call(&mut buf);
    if r < 0 {
        return (Vec::new(), r);
    }
    buf.truncate((r as usize).min(n));
    (buf, r)
}

/// Bytes for a report's detail.
fn q(b: &[u8]) -> String {
    format!("\"{}\"", b.escape_ascii())
}

impl Kit {
    fn check(&mut self, f: &str, what: &str, ok: bool, detail: fmt::Arguments) {
        if ok {
            self.lines.push(format!("PASS {}: {}", f, what));
        } else {
            self.lines.push(format!("FAIL {}: {}: {}", f, what, detail));
        }
    }

    fn eq(&mut self, f: &str, what: &str, got: i32, want: i32) {
        self.check(f, what, got == want, format_args!("got {} want {}", got, want));
    }

    fn errno(&mut self, f: &str, what: &str, got: i32, want: i32) {
        let what = format!("{} -> {}", what, errno_name(want));
        self.check(f, &what, got == want, format_args!("got {}", got));
    }

    fn eq_bytes(&mut self, f: &str, what: &str, got: &[u8], want: &str) {
        self.check(f, what, got == want.as_bytes(), format_args!("got {} want {}", q(got), q(want.as_bytes())));
    }

    /// The configure-phase checks.
    fn configure(&mut self) {
        // The config as a plugin reads it: a probe, then a buffer of the
        // size the probe gave; then read again into a roomier buffer.
        let probe = hostcall::config_read(&mut []);
        let (cfg, _) = read(probe.max(0) as usize, hostcall::config_read);
        let (got, n) = read(cfg.len() + 64, hostcall::config_read);
        self.eq("config_read", "probe returns the full length", probe, n);
        let ok = got == cfg && n as usize == cfg.len();
        self.check("config_read", "reads the config", ok, format_args!("got {} want {}", q(&got), q(&cfg)));
        let (short, n2) = read(3, hostcall::config_read);
        let ok = n2 == n && cfg.len() >= 3 && short == cfg[..3];
        self.check("config_read", "short buffer copies a prefix and returns the full length", ok, format_args!("{} {}", n2, q(&short)));
        self.eq("error_set", "returns 0", hostcall::error_set(b"not a failure"), 0);

        // Request and response functions are not available.
        let (req, resp) = (abi::MSG_REQUEST, abi::MSG_RESPONSE);
        let phase = abi::ERR_PHASE;
        self.errno("field_get", "in configure", hostcall::field_get(abi::FIELD_METHOD, &mut []), phase);
        self.errno("field_set", "in configure", hostcall::field_set(abi::FIELD_PATH, b"/x"), phase);
        self.errno("status_get", "in configure", hostcall::status_get(), phase);
        self.errno("status_set", "in configure", hostcall::status_set(200), phase);
        self.errno("header_get", "in configure", hostcall::header_get(req, b"Accept", &mut []), phase);
        self.errno("header_values", "in configure", hostcall::header_values(req, b"Accept", &mut []), phase);
        self.errno("header_names", "in configure", hostcall::header_names(req, &mut []), phase);
        self.errno("header_set", "in configure", hostcall::header_set(resp, b"A", b"b"), phase);
        self.errno("header_add", "in configure", hostcall::header_add(resp, b"A", b"b"), phase);
        self.errno("header_remove", "in configure", hostcall::header_remove(resp, b"A"), phase);
        self.errno("body_read", "in configure", hostcall::body_read(req, 0, &mut []), phase);
        self.errno("body_set", "in configure", hostcall::body_set(resp, b"x"), phase);
        self.errno("value_get", "in configure", hostcall::value_get(b"k", &mut []), phase);
        self.errno("value_set", "in configure", hostcall::value_set(b"k", b"v", 0), phase);
        self.errno("cache_lookup", "in configure", hostcall::cache_lookup(b"k", &mut []), phase);
        self.errno("cache_store", "in configure", hostcall::cache_store(b"k", b"", 1, 0, b""), phase);
        self.errno("cache_serve", "in configure", hostcall::cache_serve(b"k"), phase);
        self.errno("cache_purge", "in configure", hostcall::cache_purge(abi::PURGE_KEY, b"k"), phase);
        self.errno("cache_revalidate", "in configure", hostcall::cache_revalidate(b"k"), phase);
        self.errno("cache_request", "in configure", hostcall::cache_request(b"tck"), phase);
        self.errno("cache_response", "in configure", hostcall::cache_response(b"tck", 0), phase);
        self.errno("range_apply", "in configure", hostcall::range_apply(b"bytes=0-1"), phase);
        let mut rr = [0u8; abi::RATE_RESULT_SIZE as usize];
        self.errno("ratelimit_take", "in configure", hostcall::ratelimit_take(b"k", 1, 1000, 1, 1, &mut rr), phase);

        self.configure_assigned(&cfg);
        self.configure_keys(&cfg);
        self.configure_tokens();
        self.configure_metrics();
    }

    /// Reads config member "assigned" (tck.Assigned) over the fixture's
    /// values.
    fn configure_assigned(&mut self, cfg: &[u8]) {
        self.assigned = Assigned { scheme: SCHEME.into(), client_addr: CLIENT_ADDR.into(), request_id: REQUEST_ID.into() };
        let raw = match json::member(cfg, b"assigned") {
            Ok(Some(raw)) => raw,
            _ => return,
        };
        for (name, v) in json::Iter::object(raw) {
            let s = json_string(v).unwrap_or_default();
            if s.is_empty() {
                continue;
            }
            let s = String::from_utf8_lossy(&s).into_owned();
            if json::key_is(name, b"scheme") {
                self.assigned.scheme = s;
            } else if json::key_is(name, b"client_addr") {
                self.assigned.client_addr = s;
            } else if json::key_is(name, b"request_id") {
                self.assigned.request_id = s;
            }
        }
    }

    fn configure_keys(&mut self, cfg: &[u8]) {
        let keys_raw = match json::member(cfg, b"keys") {
            Ok(Some(raw)) => raw,
            r => return self.check("key_register", "config has keys", false, format_args!("{:?}", r)),
        };
        for el in json::Iter::array(keys_raw).map(|(_, v)| v) {
            let (mut name, mut alg, mut format) = (String::new(), 0, 0);
            let (mut key, mut msg, mut sig) = (Vec::new(), Vec::new(), Vec::new());
            for (k, v) in json::Iter::object(el) {
                if json::key_is(k, b"alg") {
                    let a = json_string(v).unwrap_or_default();
                    alg = ALG_NAMES.iter().position(|n| n.as_bytes() == a).map_or(0, |i| i as i32 + 1);
                    name = String::from_utf8_lossy(&a).into_owned();
                } else if json::key_is(k, b"format") {
                    format = json::int(v).unwrap_or(0) as i32;
                } else if json::key_is(k, b"key") {
                    key = self.decode(v);
                } else if json::key_is(k, b"msg") {
                    msg = self.decode(v);
                } else if json::key_is(k, b"sig") {
                    sig = self.decode(v);
                }
            }
            name = format!("{}/format{}", name, format);
            let handle = hostcall::key_register(alg, format, &key);
            self.check("key_register", &format!("registers {}", name), handle >= 0, format_args!("got {}", handle));
            let again = hostcall::key_register(alg, format, &key);
            self.eq("key_register", &format!("the same key again gets the same handle ({})", name), again, handle);
            self.keys.push(RegKey { name, handle, format, key, msg, sig });
        }
        let inv = abi::ERR_INVALID;
        self.errno("key_register", "algorithm 0", hostcall::key_register(0, abi::KEY_RAW, b"secret"), inv);
        self.errno("key_register", "algorithm 99", hostcall::key_register(99, abi::KEY_RAW, b"secret"), inv);
        self.errno("key_register", "format 9", hostcall::key_register(abi::ALG_HS256, 9, b"secret"), inv);
        self.errno("key_register", "empty HMAC secret", hostcall::key_register(abi::ALG_HS256, abi::KEY_RAW, b""), inv);
        self.errno("key_register", "HS256 secret shorter than the hash", hostcall::key_register(abi::ALG_HS256, abi::KEY_RAW, &[0; 31]), inv);
        self.errno("key_register", "HS512 secret shorter than the hash", hostcall::key_register(abi::ALG_HS512, abi::KEY_RAW, &[0; 63]), inv);
        self.errno("key_register", "garbage PKIX", hostcall::key_register(abi::ALG_RS256, abi::KEY_PKIX, b"garbage"), inv);
        self.errno("key_register", "garbage JWK", hostcall::key_register(abi::ALG_RS256, abi::KEY_JWK, b"{"), inv);
        self.errno("key_register", "raw key for RSA", hostcall::key_register(abi::ALG_RS256, abi::KEY_RAW, &[0; 256]), inv);
        // A key is bound to its algorithm family.
        let mut family = Vec::new();
        for k in &self.keys {
            if k.name.starts_with("RS256/") {
                family.push(("RSA key as ES256", hostcall::key_register(abi::ALG_ES256, k.format, &k.key)));
            }
            if k.name.starts_with("EdDSA/") {
                family.push(("Ed25519 key as ES256", hostcall::key_register(abi::ALG_ES256, k.format, &k.key)));
            }
        }
        for (what, r) in family {
            self.errno("key_register", what, r, inv);
        }
        // verify works in configure too, for plugins that check a fixture.
        if let Some(k) = self.keys.first() {
            let (what, r) = (format!("valid signature in configure ({})", k.name), hostcall::verify(k.handle, &k.msg, &k.sig));
            self.eq("verify", &what, r, 1);
        }
    }

    /// Decodes a base64 string member of the config.
    fn decode(&mut self, v: &[u8]) -> Vec<u8> {
        let s = json_string(v).unwrap_or_default();
        let mut out = vec![0; base64::decoded_len(s.len())];
        match base64::decode_std(&s, &mut out) {
            Ok(b) => b.to_vec(),
            Err(e) => {
                self.check("key_register", "config base64", false, format_args!("{:?}", e));
                Vec::new()
            }
        }
    }

    fn configure_metrics(&mut self) {
        let (counter, gauge, hist) = (
            hostcall::metric_define(abi::METRIC_COUNTER, b"tck_checks"),
            hostcall::metric_define(abi::METRIC_GAUGE, b"tck_gauge"),
            hostcall::metric_define(abi::METRIC_HISTOGRAM, b"tck_hist"),
        );
        (self.counter, self.gauge, self.hist) = (counter, gauge, hist);
        self.check("metric_define", "counter", counter >= 0, format_args!("{}", counter));
        self.check("metric_define", "gauge", gauge >= 0, format_args!("{}", gauge));
        self.check("metric_define", "histogram", hist >= 0, format_args!("{}", hist));
        let again = hostcall::metric_define(abi::METRIC_COUNTER, b"tck_checks");
        self.eq("metric_define", "same name and kind again gets the same handle", again, self.counter);
        let inv = abi::ERR_INVALID;
        self.errno("metric_define", "same name, other kind", hostcall::metric_define(abi::METRIC_GAUGE, b"tck_checks"), inv);
        self.errno("metric_define", "invalid name", hostcall::metric_define(abi::METRIC_COUNTER, b"Bad-Name"), inv);
        self.errno("metric_define", "kind 9", hostcall::metric_define(9, b"tck_other"), inv);
    }
}

/// The text of a raw JSON string value.
fn json_string(raw: &[u8]) -> Result<Vec<u8>, json::Error> {
    let mut out = vec![0; raw.len()];
    let n = json::string(raw, &mut out)?.len();
    out.truncate(n);
    Ok(out)
}
