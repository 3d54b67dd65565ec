//! The request-phase checks (plugin.go: OnRequest).

use wedge::{abi, hostcall};

use crate::*;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    /// WASI's clock, the guest's own, which time_now must agree with (the
    /// Go kit compares with time.Now, which reads the same).
    fn clock_time_get(id: u32, precision: u64, time: *mut u64) -> u16;
}

/// The guest's wall clock in Unix nanoseconds (WASI's realtime clock).
fn guest_now() -> i64 {
    let mut t = 0u64;
    // SAFETY: the host writes 8 bytes to a valid, aligned u64.
    unsafe { clock_time_get(0, 1, &mut t) };
    t as i64
}

impl Kit {
    pub(crate) fn on_request(&mut self) {
        self.fields();
        self.headers();
        self.bodies();
        self.values();
        self.request_stores();
        self.crypto();
        self.tokens();
        self.misc();
        let phase = abi::ERR_PHASE;
        self.errno("key_register", "in request", hostcall::key_register(abi::ALG_HS256, abi::KEY_RAW, b"s"), phase);
        self.errno("metric_define", "in request", hostcall::metric_define(abi::METRIC_COUNTER, b"tck_late"), phase);
    }

    fn fields(&mut self) {
        let a = &self.assigned;
        let fields = [
            (abi::FIELD_METHOD, METHOD.to_string()),
            (abi::FIELD_SCHEME, a.scheme.clone()),
            (abi::FIELD_HOST, HOST.to_string()),
            (abi::FIELD_PATH, PATH.to_string()),
            (abi::FIELD_RAW_QUERY, RAW_QUERY.to_string()),
            (abi::FIELD_PROTO, PROTO.to_string()),
            (abi::FIELD_CLIENT_ADDR, a.client_addr.clone()),
            (abi::FIELD_REQUEST_ID, a.request_id.clone()),
        ];
        for (field, want) in fields {
            let (got, _) = read(256, |buf| hostcall::field_get(field, buf));
            let what = format!("field {}", field);
            if want == ANY_REQUEST_ID {
                self.check("field_get", &what, !got.is_empty(), format_args!("empty"));
                continue;
            }
            self.eq_bytes("field_get", &what, &got, &want);
        }
        let (inv, big) = (abi::ERR_INVALID, abi::ERR_TOO_LARGE);
        self.eq("field_get", "probe", hostcall::field_get(abi::FIELD_HOST, &mut []), HOST.len() as i32);
        self.errno("field_get", "field 99", hostcall::field_get(99, &mut []), inv);
        self.errno("field_get", "field -1", hostcall::field_get(-1, &mut []), inv);

        self.eq("field_set", "path", hostcall::field_set(abi::FIELD_PATH, REWRITTEN_PATH.as_bytes()), 0);
        let (got, _) = read(64, |buf| hostcall::field_get(abi::FIELD_PATH, buf));
        self.eq_bytes("field_set", "path reads back", &got, REWRITTEN_PATH);
        self.eq("field_set", "method", hostcall::field_set(abi::FIELD_METHOD, REWRITTEN_METHOD.as_bytes()), 0);
        self.eq("field_set", "query", hostcall::field_set(abi::FIELD_RAW_QUERY, b"q=1"), 0);
        self.eq("field_set", "host", hostcall::field_set(abi::FIELD_HOST, HOST.as_bytes()), 0);
        self.errno("field_set", "scheme is read-only", hostcall::field_set(abi::FIELD_SCHEME, b"http"), inv);
        self.errno("field_set", "field 99", hostcall::field_set(99, b"x"), inv);
        self.errno("field_set", "path without slash", hostcall::field_set(abi::FIELD_PATH, b"nope"), inv);
        self.errno("field_set", "path with space", hostcall::field_set(abi::FIELD_PATH, b"/a b"), inv);
        self.errno("field_set", "path with CRLF", hostcall::field_set(abi::FIELD_PATH, b"/a\r\nX: y"), inv);
        self.errno("field_set", "method with space", hostcall::field_set(abi::FIELD_METHOD, b"GE T"), inv);
        self.errno("field_set", "host with slash", hostcall::field_set(abi::FIELD_HOST, b"a/b"), inv);
        self.errno("field_set", "query with #", hostcall::field_set(abi::FIELD_RAW_QUERY, b"a#b"), inv);
        let mut long = vec![b'a'; 1 + (9 << 10)];
        long[0] = b'/';
        self.errno("field_set", "path of 9 KiB", hostcall::field_set(abi::FIELD_PATH, &long), big);

        self.eq("status_get", "no answer yet", hostcall::status_get(), 0);
        self.errno("status_set", "99", hostcall::status_set(99), inv);
        self.errno("status_set", "199", hostcall::status_set(199), inv);
        self.errno("status_set", "600", hostcall::status_set(600), inv);
    }

    fn headers(&mut self) {
        let (req, resp, inv) = (abi::MSG_REQUEST, abi::MSG_RESPONSE, abi::ERR_INVALID);
        let get = |m: i32, name: &str| read(256, |buf| hostcall::header_get(m, name.as_bytes(), buf));
        let (v, _) = get(req, "accept");
        self.eq_bytes("header_get", "case-insensitive name", &v, "text/html");
        let (v, _) = get(req, "X-Multi");
        self.eq_bytes("header_get", "first of several values", &v, "one");
        let (_, r) = get(req, "X-Missing");
        self.errno("header_get", "missing", r, abi::ERR_NOT_FOUND);
        self.errno("header_get", "msg 7", hostcall::header_get(7, b"Accept", &mut []), inv);
        self.eq("header_get", "probe", hostcall::header_get(req, b"Accept", &mut []), "text/html".len() as i32);
        let (short, r) = read(4, |buf| hostcall::header_get(req, b"Accept", buf));
        self.check("header_get", "short buffer", short == b"text" && r == 9, format_args!("{} {}", q(&short), r));

        let (vals, _) = read(256, |buf| hostcall::header_values(req, b"x-multi", buf));
        self.eq_bytes("header_values", "all values as a list", &vals, "one\0two\0");
        self.eq("header_values", "missing is empty", hostcall::header_values(req, b"X-Missing", &mut []), 0);
        self.errno("header_values", "msg 7", hostcall::header_values(7, b"A", &mut []), inv);

        let (names, _) = read(256, |buf| hostcall::header_names(req, buf));
        self.eq_bytes("header_names", "each name once, in order", &names, "Accept\0X-Multi\0Content-Type\0X-Remove-Me\0");
        self.errno("header_names", "msg 7", hostcall::header_names(7, &mut []), inv);

        self.eq("header_set", "request header", hostcall::header_set(req, b"X-Added", b"1"), 0);
        let (v, _) = get(req, "x-added");
        self.eq_bytes("header_set", "reads back", &v, "1");
        self.eq("header_set", "response header in the request phase", hostcall::header_set(resp, b"X-From-Request", b"yes"), 0);
        for (what, name, value) in [
            ("name with space", "Bad Name", "v"),
            ("empty name", "", "v"),
            ("name with colon", "A:b", "v"),
            ("value with CRLF", "X-Inject", "a\r\nSet-Cookie: x"),
            ("value with LF", "X-Inject", "a\nb"),
            ("value with NUL", "X-Inject", "a\0b"),
            ("Content-Length", "Content-Length", "0"),
            ("Transfer-Encoding", "transfer-encoding", "chunked"),
            ("Connection", "Connection", "close"),
            ("Upgrade", "upgrade", "websocket"),
            ("Host", "Host", "evil.example"),
        ] {
            let (name, value) = (name.as_bytes(), value.as_bytes());
            self.errno("header_set", what, hostcall::header_set(req, name, value), inv);
            self.errno("header_add", what, hostcall::header_add(resp, name, value), inv);
        }
        self.errno("header_set", "value of 17 KiB", hostcall::header_set(req, b"X-Big", &[b'v'; 17 << 10]), abi::ERR_TOO_LARGE);
        self.errno("header_set", "msg 7", hostcall::header_set(7, b"A", b"b"), inv);
        self.eq("header_set", "tab inside a value", hostcall::header_set(req, b"X-Tab", b"a\tb"), 0);

        self.eq("header_add", "third value", hostcall::header_add(req, b"X-Multi", b"three"), 0);
        let (vals, _) = read(256, |buf| hostcall::header_values(req, b"X-Multi", buf));
        self.eq_bytes("header_add", "appended in order", &vals, "one\0two\0three\0");
        self.errno("header_add", "msg 7", hostcall::header_add(7, b"A", b"b"), inv);

        self.eq("header_remove", "present", hostcall::header_remove(req, b"x-remove-me"), 0);
        let (_, r) = get(req, "X-Remove-Me");
        self.errno("header_remove", "gone afterwards", r, abi::ERR_NOT_FOUND);
        self.eq("header_remove", "absent", hostcall::header_remove(req, b"X-Never"), 0);
        self.errno("header_remove", "invalid name", hostcall::header_remove(req, b"a b"), inv);
        self.errno("header_remove", "Content-Length", hostcall::header_remove(req, b"Content-Length"), inv);
        self.errno("header_remove", "msg 7", hostcall::header_remove(7, b"A"), inv);
    }

    fn bodies(&mut self) {
        let req = abi::MSG_REQUEST;
        let (got, n) = read(256, |buf| hostcall::body_read(req, 0, buf));
        self.eq_bytes("body_read", "whole body", &got, BODY);
        self.eq("body_read", "returns the full length", n, BODY.len() as i32);
        let (got, _) = read(4, |buf| hostcall::body_read(req, 2, buf));
        self.eq_bytes("body_read", "from an offset", &got, &BODY[2..6]);
        self.eq("body_read", "offset past the end", hostcall::body_read(req, 1000, &mut [0; 4]), BODY.len() as i32);
        self.errno("body_read", "negative offset", hostcall::body_read(req, -1, &mut []), abi::ERR_INVALID);
        self.errno("body_read", "msg 7", hostcall::body_read(7, 0, &mut []), abi::ERR_INVALID);

        self.eq("body_set", "request body", hostcall::body_set(req, REQUEST_BODY.as_bytes()), 0);
        let (got, _) = read(256, |buf| hostcall::body_read(req, 0, buf));
        self.eq_bytes("body_set", "reads back", &got, REQUEST_BODY);
        let r = hostcall::body_set(req, &vec![0; MAX_BODY_SIZE + 1]);
        self.errno("body_set", "past the host's limit", r, abi::ERR_TOO_LARGE);
        self.errno("body_set", "msg 7", hostcall::body_set(7, b""), abi::ERR_INVALID);
    }

    fn values(&mut self) {
        let (inv, big) = (abi::ERR_INVALID, abi::ERR_TOO_LARGE);
        self.eq("value_set", "set", hostcall::value_set(b"tck.v", b"1", 0), 0);
        let (got, _) = read(16, |buf| hostcall::value_get(b"tck.v", buf));
        self.eq_bytes("value_get", "reads back", &got, "1");
        self.eq("value_set", "replace", hostcall::value_set(b"tck.v", b"2", 0), 0);
        let (got, _) = read(16, |buf| hostcall::value_get(b"tck.v", buf));
        self.eq_bytes("value_get", "replaced", &got, "2");
        self.errno("value_get", "missing", hostcall::value_get(b"tck.none", &mut []), abi::ERR_NOT_FOUND);
        let r = hostcall::value_set(FORWARD_KEY.as_bytes(), FORWARD_VALUE.as_bytes(), abi::VALUE_FORWARD);
        self.eq("value_set", "forwarded", r, 0);
        self.errno("value_set", "unknown flag", hostcall::value_set(b"k", b"v", 4), inv);
        self.errno("value_set", "forwarded key with a space", hostcall::value_set(b"a b", b"v", abi::VALUE_FORWARD), inv);
        self.errno("value_set", "forwarded value with CRLF", hostcall::value_set(b"k", b"a\r\nb", abi::VALUE_FORWARD), inv);
        let long_key = vec![b'k'; abi::MAX_VALUE_KEY_LEN as usize + 1];
        self.errno("value_set", "key of 257 bytes", hostcall::value_set(&long_key, b"v", 0), big);
        let long_value = vec![0; abi::MAX_VALUE_LEN as usize + 1];
        self.errno("value_set", "value past the limit", hostcall::value_set(b"k", &long_value, 0), big);
        for i in 0.. {
            // fill up to the count limit
            let r = hostcall::value_set(format!("fill.{}", i).as_bytes(), b"x", 0);
            if r != 0 || i > abi::MAX_VALUES {
                self.errno("value_set", "more values than the limit", r, big);
                break;
            }
        }
    }

    fn request_stores(&mut self) {
        let (inv, big) = (abi::ERR_INVALID, abi::ERR_TOO_LARGE);
        self.errno("cache_lookup", "missing", hostcall::cache_lookup(b"tck-none", &mut []), abi::ERR_NOT_FOUND);
        self.errno("cache_store", "a response without a status", hostcall::cache_store(b"k", b"", 1000, 0, b""), inv);
        self.errno("cache_serve", "missing", hostcall::cache_serve(b"tck-none"), abi::ERR_NOT_FOUND);
        self.errno("cache_purge", "kind 9", hostcall::cache_purge(9, b"k"), inv);
        self.errno("cache_revalidate", "empty key", hostcall::cache_revalidate(b""), inv);
        self.errno("cache_revalidate", "key of 5 KiB", hostcall::cache_revalidate(&[0; 5 << 10]), big);
        self.eq("cache_revalidate", "scheduled", hostcall::cache_revalidate(REVALIDATE_KEY.as_bytes()), 1);
        // The request continues, so the host drops it: tcktest.Check checks
        // that the key is free again afterwards.
        self.eq("cache_revalidate", "a second one for the same request is skipped", hostcall::cache_revalidate(b"tck-reval-2"), 0);
        self.errno("cache_request", "a name that is not a token", hostcall::cache_request(b"a b"), inv);
        let what = format!("a {} is not looked up", REWRITTEN_METHOD);
        self.errno("cache_request", &what, hostcall::cache_request(b"tck"), inv);
        hostcall::field_set(abi::FIELD_METHOD, b"GET");
        // values() filled the request's values: a miss cannot save its state.
        self.errno("cache_request", "a miss with no room for its state", hostcall::cache_request(b"tck"), big);
        hostcall::field_set(abi::FIELD_METHOD, REWRITTEN_METHOD.as_bytes());
        self.errno("cache_response", "in request", hostcall::cache_response(b"tck", 0), abi::ERR_PHASE);
        self.eq("range_apply", "no answer yet: status 0, nothing to cut", hostcall::range_apply(b"bytes=0-1"), 0);
        self.errno("range_apply", "value of 17 KiB", hostcall::range_apply(&[b'1'; 17 << 10]), big);

        let mut out = [0u8; abi::RATE_RESULT_SIZE as usize];
        let mut take = |cost: i32| {
            let r = hostcall::ratelimit_take(b"tck-rl", 2, 60000, 2, cost, &mut out);
            (r, RateResult::read(&out))
        };
        let (r, res) = take(1);
        self.check("ratelimit_take", "first of 2 allowed", r == 1 && res.remaining == 1 && res.retry_after_ms == 0, format_args!("{} {:?}", r, res));
        let (r, res) = take(1);
        self.check("ratelimit_take", "second of 2 allowed", r == 1 && res.remaining == 0, format_args!("{} {:?}", r, res));
        let (r, res) = take(1);
        let ok = r == 0 && res.remaining == 0 && res.retry_after_ms > 0 && res.retry_after_ms <= 30000;
        self.check("ratelimit_take", "third denied with a retry time", ok, format_args!("{} {:?}", r, res));
        self.check("ratelimit_take", "reset within the period", res.reset_ms > 0 && res.reset_ms <= 60000, format_args!("{:?}", res));
        let (r, _) = take(0);
        self.eq("ratelimit_take", "cost 0 peeks", r, 1);
        for (what, limit, burst, cost, period, buf) in [
            ("limit 0", 0, 1, 1, 1000, 24),
            ("period 0", 1, 1, 1, 0, 24),
            ("burst 0", 1, 0, 1, 1000, 24),
            ("negative cost", 1, 1, -1, 1000, 24),
            ("result buffer of 8 bytes", 1, 1, 1, 1000, 8),
        ] {
            let r = hostcall::ratelimit_take(b"k", limit, period, burst, cost, &mut [0u8; 24][..buf]);
            self.errno("ratelimit_take", what, r, inv);
        }
        let r = hostcall::ratelimit_take(&[0; 2 << 10], 1, 1000, 1, 1, &mut out);
        self.errno("ratelimit_take", "key of 2 KiB", r, big);
    }

    fn crypto(&mut self) {
        let mut results = Vec::new();
        for k in &self.keys {
            let mut bad = k.sig.clone();
            if let Some(b) = bad.get_mut(k.sig.len() / 2) {
                *b ^= 0x55;
            }
            let other = [&k.msg[..], b"!"].concat();
            results.push((format!("valid signature ({})", k.name), hostcall::verify(k.handle, &k.msg, &k.sig), 1));
            results.push((format!("valid again, from the cache ({})", k.name), hostcall::verify(k.handle, &k.msg, &k.sig), 1));
            results.push((format!("tampered signature ({})", k.name), hostcall::verify(k.handle, &k.msg, &bad), 0));
            results.push((format!("other message ({})", k.name), hostcall::verify(k.handle, &other, &k.sig), 0));
        }
        for (what, got, want) in results {
            self.eq("verify", &what, got, want);
        }
        self.errno("verify", "unknown handle", hostcall::verify(999, b"m", b"s"), abi::ERR_NOT_FOUND);
        self.errno("verify", "negative handle", hostcall::verify(-1, b"m", b"s"), abi::ERR_NOT_FOUND);

        let sum = sha256::sum(&[b"abc"]);
        let digest = |alg: i32, msg: &[u8]| read(64, |buf| hostcall::digest(alg, msg, buf));
        let (got, n) = digest(abi::DIGEST_SHA256, b"abc");
        self.check("digest", "SHA-256 of abc", n == 32 && got == sum, format_args!("{}", hex(&got)));
        let (got, n) = digest(abi::DIGEST_SHA384, b"abc");
        self.check("digest", "SHA-384 of abc", n == 48 && got.starts_with(&[0xcb, 0x00, 0x75, 0x3f]), format_args!("{}", hex(&got)));
        let (got, n) = digest(abi::DIGEST_SHA512, b"abc");
        self.check("digest", "SHA-512 of abc", n == 64 && got.starts_with(&[0xdd, 0xaf, 0x35, 0xa1]), format_args!("{}", hex(&got)));
        self.eq("digest", "probe", hostcall::digest(abi::DIGEST_SHA256, b"abc", &mut []), 32);
        let (keyed, n) = digest(abi::DIGEST_KEYED, b"abc");
        let (again, _) = digest(abi::DIGEST_KEYED, b"abc");
        let (other, _) = digest(abi::DIGEST_KEYED, b"abd");
        let ok = n == 32 && keyed == again && keyed != other && keyed != sum;
        self.check("digest", "keyed: 32 bytes, stable, not SHA-256", ok, format_args!("{}", hex(&keyed)));
        self.errno("digest", "algorithm 9", hostcall::digest(9, b"abc", &mut []), abi::ERR_INVALID);
    }

    fn misc(&mut self) {
        let now = hostcall::time_now();
        let skew = (now - guest_now()).unsigned_abs();
        self.check("time_now", "agrees with the guest's clock", skew < 60_000_000_000, format_args!("{}", now));
        let (mut r1, mut r2) = ([0u8; 32], [0u8; 32]);
        self.eq("random_fill", "returns 0", hostcall::random_fill(&mut r1), 0);
        hostcall::random_fill(&mut r2);
        self.check("random_fill", "random", r1 != r2 && r1 != [0; 32], format_args!("{}", hex(&r1)));
        self.eq("random_fill", "empty buffer", hostcall::random_fill(&mut []), 0);

        self.eq("log", "message with attributes", hostcall::log(abi::LEVEL_INFO, LOG_MESSAGE.as_bytes(), b"k\0v\0"), 0);
        self.eq("log", "debug", hostcall::log(abi::LEVEL_DEBUG, b"tck debug", b""), 0);
        self.errno("log", "odd attributes", hostcall::log(abi::LEVEL_INFO, b"x", b"k\0"), abi::ERR_INVALID);
        let long = vec![0; abi::MAX_LOG_LEN as usize + 1];
        self.errno("log", "message past the limit", hostcall::log(abi::LEVEL_INFO, &long, b""), abi::ERR_TOO_LARGE);

        self.eq("metric_record", "gauge", hostcall::metric_record(self.gauge, GAUGE_VALUE), 0);
        self.eq("metric_record", "histogram", hostcall::metric_record(self.hist, 0.25), 0);
        let inv = abi::ERR_INVALID;
        self.errno("metric_record", "negative counter", hostcall::metric_record(self.counter, -1.0), inv);
        self.errno("metric_record", "NaN", hostcall::metric_record(self.gauge, f64::NAN), inv);
        self.errno("metric_record", "infinity", hostcall::metric_record(self.hist, f64::INFINITY), inv);
        self.errno("metric_record", "unknown handle", hostcall::metric_record(99, 1.0), abi::ERR_NOT_FOUND);
        self.eq("config_read", "in request", hostcall::config_read(&mut []), hostcall::config_read(&mut []));
    }
}

/// What ratelimit_take writes (abi.RateResult).
#[derive(Debug)]
struct RateResult {
    remaining: i64,
    reset_ms: i64,
    retry_after_ms: i64,
}

impl RateResult {
    fn read(b: &[u8; abi::RATE_RESULT_SIZE as usize]) -> Self {
        let at = |i: usize| i64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        RateResult { remaining: at(0), reset_ms: at(8), retry_after_ms: at(16) }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{:02x}", c)).collect()
}
