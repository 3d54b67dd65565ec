// The probe: a plugin that makes a fixed script of host calls in each
// phase and answers with their results, one line each. The same file is
// the native host's test (src/native/tests.rs) and, built as Wasm, a
// plugin of its own (testdata/probe, which include!s it); sdk/rust's Go
// test compares the two transcripts, so the native host and the edge's
// agree on every call here. The calls are those where the native host
// claims the edge's behaviour (testing.rs lists where it does not).
//
// The includer brings into scope: `hc` (wedge::hostcall), `abi`, `Action`,
// `Error`, `Features`, `Plugin`, `Request`, `Response`, `Vec`, `format!`
// and `vec!`.

/// The configuration the probe is loaded with.
pub const PROBE_CONFIG: &[u8] = b"{\"probe\":true}";

/// HMAC-SHA256 of `msg` under 32 bytes of 7.
const PROBE_MAC: [u8; 32] = [
    0x91, 0x96, 0x91, 0xcf, 0x32, 0xab, 0x7a, 0xf4, 0x9d, 0x57, 0x88, 0xb9, 0xed, 0x38, 0x72, 0xcd,
    0xbb, 0x44, 0x4a, 0x87, 0xbc, 0x23, 0x8d, 0x22, 0x8a, 0x76, 0xd8, 0x71, 0x0f, 0xf3, 0x3e, 0x35,
];

/// HMAC-SHA384 of `msg` under 48 bytes of 9.
const PROBE_MAC_384: [u8; 48] = [
    0xe6, 0xb5, 0x59, 0x3c, 0xa6, 0x23, 0x16, 0xb0, 0x1b, 0xbd, 0x67, 0xdd, 0x30, 0xb6, 0xf3, 0xb9,
    0xcc, 0xfc, 0x74, 0x15, 0xe7, 0xfc, 0xe7, 0x50, 0x1a, 0x34, 0x1a, 0x66, 0x65, 0x49, 0xab, 0x22,
    0xd7, 0x86, 0xf4, 0x41, 0xb7, 0x4a, 0x2c, 0x6e, 0x4f, 0x9b, 0x3b, 0x1d, 0x35, 0xec, 0x39, 0x11,
];

/// HMAC-SHA512 of `msg` under 64 bytes of 9.
const PROBE_MAC_512: [u8; 64] = [
    0xb5, 0xc8, 0xd1, 0xc5, 0xe1, 0x8c, 0xd6, 0xe9, 0x9c, 0x9d, 0xfd, 0xb9, 0xcd, 0xb7, 0xef, 0xcc,
    0x84, 0x50, 0xfd, 0x47, 0x64, 0xfd, 0xee, 0xf4, 0xf2, 0x3c, 0xa2, 0x73, 0x92, 0xcb, 0x3a, 0xab,
    0x03, 0xd7, 0xe8, 0x90, 0xb5, 0xcd, 0x0f, 0xf2, 0x32, 0x54, 0x20, 0x5a, 0xe8, 0xd4, 0x8c, 0x9e,
    0x06, 0x6b, 0xd1, 0x66, 0xc5, 0x65, 0xe9, 0xf6, 0x42, 0xd8, 0x95, 0x68, 0x3f, 0x79, 0x7b, 0x31,
];

/// The transcript: one line per call, its label, result and output.
#[derive(Default)]
pub struct Transcript(pub Vec<u8>);

impl Transcript {
    fn rec(&mut self, label: &str, r: i32) {
        self.0
            .extend_from_slice(format!("{} {}\n", label, r).as_bytes());
    }

    /// Records a "buffer + limit" call and the bytes it copied.
    fn out(&mut self, label: &str, r: i32, buf: &[u8]) {
        let n = if r > 0 {
            (r as usize).min(buf.len())
        } else {
            0
        };
        let text = buf[..n].escape_ascii();
        self.0
            .extend_from_slice(format!("{} {} \"{}\"\n", label, r, text).as_bytes());
    }
}

/// Records a call reading into a buffer of `$len` bytes.
macro_rules! read_into {
    ($t:expr, $label:expr, $len:expr, |$b:ident| $call:expr) => {{
        let mut buf = vec![0u8; $len];
        let $b = &mut buf[..];
        let r = $call;
        $t.out($label, r, &buf);
    }};
}

fn probe_configure(t: &mut Transcript) {
    read_into!(t, "config_read", 64, |b| hc::config_read(b));
    read_into!(t, "config_read short", 3, |b| hc::config_read(b));
    read_into!(t, "field_get configure", 8, |b| hc::field_get(
        abi::FIELD_PATH,
        b
    ));
    t.rec("status_get configure", hc::status_get());
    t.rec(
        "header_set configure",
        hc::header_set(abi::MSG_RESPONSE, b"X", b"1"),
    );
    t.rec("value_set configure", hc::value_set(b"k", b"v", 0));
    t.rec(
        "cache_purge configure",
        hc::cache_purge(abi::PURGE_KEY, b"k"),
    );
    t.rec(
        "ratelimit configure",
        hc::ratelimit_take(b"k", 1, 1000, 1, 1, &mut [0; 24]),
    );
    t.rec(
        "metric counter",
        hc::metric_define(abi::METRIC_COUNTER, b"probe_total"),
    );
    t.rec(
        "metric gauge",
        hc::metric_define(abi::METRIC_GAUGE, b"probe_depth"),
    );
    t.rec(
        "metric histogram",
        hc::metric_define(abi::METRIC_HISTOGRAM, b"probe_seconds"),
    );
    t.rec(
        "metric again",
        hc::metric_define(abi::METRIC_COUNTER, b"probe_total"),
    );
    t.rec(
        "metric other kind",
        hc::metric_define(abi::METRIC_GAUGE, b"probe_total"),
    );
    for name in [&b""[..], b"Upper", b"1st", b"has-dash", &[b'a'; 65]] {
        t.rec(
            "metric bad name",
            hc::metric_define(abi::METRIC_COUNTER, name),
        );
    }
    t.rec("metric bad kind", hc::metric_define(3, b"probe_kind"));
    t.rec(
        "key hs256",
        hc::key_register(abi::ALG_HS256, abi::KEY_RAW, &[7; 32]),
    );
    t.rec(
        "key again",
        hc::key_register(abi::ALG_HS256, abi::KEY_RAW, &[7; 32]),
    );
    t.rec(
        "key hs384",
        hc::key_register(abi::ALG_HS384, abi::KEY_RAW, &[9; 48]),
    );
    t.rec(
        "key hs512",
        hc::key_register(abi::ALG_HS512, abi::KEY_RAW, &[9; 64]),
    );
    t.rec(
        "key hs384 of 64",
        hc::key_register(abi::ALG_HS384, abi::KEY_RAW, &[9; 64]),
    );
    t.rec(
        "key hs384 short",
        hc::key_register(abi::ALG_HS384, abi::KEY_RAW, &[9; 47]),
    );
    t.rec(
        "key hs512 short",
        hc::key_register(abi::ALG_HS512, abi::KEY_RAW, &[9; 63]),
    );
    t.rec(
        "key short",
        hc::key_register(abi::ALG_HS256, abi::KEY_RAW, &[7; 31]),
    );
    t.rec("key bad alg", hc::key_register(0, abi::KEY_RAW, &[7; 32]));
    t.rec(
        "key bad format",
        hc::key_register(abi::ALG_HS256, 3, &[7; 32]),
    );
    t.rec(
        "log configure",
        hc::log(abi::LEVEL_DEBUG, b"configuring", b"k\0v\0"),
    );
    t.rec("error_set", hc::error_set(b"not an error"));
}

fn probe_request(t: &mut Transcript) {
    let fields = [
        abi::FIELD_METHOD,
        abi::FIELD_SCHEME,
        abi::FIELD_HOST,
        abi::FIELD_PATH,
        abi::FIELD_RAW_QUERY,
        abi::FIELD_PROTO,
        abi::FIELD_CLIENT_ADDR,
    ];
    for f in fields {
        read_into!(t, &format!("field_get {}", f), 64, |b| hc::field_get(f, b));
    }
    read_into!(t, "field_get short", 2, |b| hc::field_get(
        abi::FIELD_PATH,
        b
    ));
    t.rec("field_get unknown", hc::field_get(8, &mut []));
    let sets: [(i32, &[u8]); 14] = [
        (abi::FIELD_METHOD, b"PUT"),
        (abi::FIELD_METHOD, b"GE T"),
        (abi::FIELD_HOST, b"origin.internal"),
        (abi::FIELD_HOST, b"user@host"),
        (abi::FIELD_HOST, b""),
        (abi::FIELD_PATH, b"/v2/items"),
        (abi::FIELD_PATH, b"relative"),
        (abi::FIELD_PATH, b"/a?b"),
        (abi::FIELD_RAW_QUERY, b"z=9"),
        (abi::FIELD_RAW_QUERY, b"a#b"),
        (abi::FIELD_SCHEME, b"http"),
        (abi::FIELD_PROTO, b"HTTP/2"),
        (abi::FIELD_REQUEST_ID, b"x"),
        (9, b"x"),
    ];
    for (f, v) in sets {
        t.rec(
            &format!("field_set {} \"{}\"", f, v.escape_ascii()),
            hc::field_set(f, v),
        );
    }
    let mut long = vec![b'a'; 8193];
    long[0] = b'/';
    t.rec("field_set long", hc::field_set(abi::FIELD_PATH, &long));
    read_into!(t, "field_get after set", 64, |b| hc::field_get(
        abi::FIELD_PATH,
        b
    ));

    t.rec("status_get", hc::status_get());
    t.rec("status_set 199", hc::status_set(199));
    t.rec("status_set 600", hc::status_set(600));
    t.rec("status_set 404", hc::status_set(404));
    t.rec("status_get set", hc::status_get());

    read_into!(t, "header_get probe", 0, |b| hc::header_get(
        abi::MSG_REQUEST,
        b"Accept",
        b
    ));
    read_into!(t, "header_get short", 4, |b| hc::header_get(
        abi::MSG_REQUEST,
        b"Accept",
        b
    ));
    read_into!(t, "header_get", 64, |b| hc::header_get(
        abi::MSG_REQUEST,
        b"aCCEPT",
        b
    ));
    read_into!(t, "header_get absent", 64, |b| hc::header_get(
        abi::MSG_REQUEST,
        b"Nope",
        b
    ));
    read_into!(t, "header_get bad msg", 64, |b| hc::header_get(
        2, b"Accept", b
    ));
    read_into!(t, "header_values", 64, |b| hc::header_values(
        abi::MSG_REQUEST,
        b"x-multi",
        b
    ));
    read_into!(t, "header_values empty", 64, |b| hc::header_values(
        abi::MSG_REQUEST,
        b"Empty",
        b
    ));
    read_into!(t, "header_values absent", 64, |b| hc::header_values(
        abi::MSG_REQUEST,
        b"Nope",
        b
    ));
    read_into!(t, "header_names", 64, |b| hc::header_names(
        abi::MSG_REQUEST,
        b
    ));
    read_into!(t, "header_names bad msg", 64, |b| hc::header_names(-1, b));
    t.rec(
        "header_set",
        hc::header_set(abi::MSG_REQUEST, b"X-MULTI", b"three"),
    );
    t.rec(
        "header_add",
        hc::header_add(abi::MSG_REQUEST, b"X-Added", b"a\tb"),
    );
    t.rec(
        "header_remove",
        hc::header_remove(abi::MSG_REQUEST, b"empty"),
    );
    t.rec(
        "header_remove absent",
        hc::header_remove(abi::MSG_REQUEST, b"Absent"),
    );
    read_into!(t, "header_names after", 64, |b| hc::header_names(
        abi::MSG_REQUEST,
        b
    ));
    for name in [
        "Content-Length",
        "transfer-encoding",
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "te",
        "Trailer",
        "Upgrade",
        "HOST",
    ] {
        t.rec(
            &format!("header_set {}", name),
            hc::header_set(abi::MSG_RESPONSE, name.as_bytes(), b"1"),
        );
    }
    for v in [
        &b"a\r\nb"[..],
        b"a\nb",
        b"a\0b",
        b"a\x7fb",
        b"\x01",
        b"caf\xe9",
        b"",
    ] {
        t.rec(
            &format!("header_add value {:?}", v),
            hc::header_add(abi::MSG_RESPONSE, b"X-V", v),
        );
    }
    for n in [&b""[..], b"X Bad", b"X:Bad", &[b'a'; 256], &[b'a'; 257]] {
        t.rec(
            &format!("header_add name {}", n.len()),
            hc::header_add(abi::MSG_RESPONSE, n, b"v"),
        );
    }
    t.rec(
        "header_set 16K",
        hc::header_set(abi::MSG_RESPONSE, b"X-Big", &[b'v'; 16 << 10]),
    );
    t.rec(
        "header_set 16K+1",
        hc::header_set(abi::MSG_RESPONSE, b"X-Big", &[b'v'; (16 << 10) + 1]),
    );
    t.rec("header_set bad msg", hc::header_set(2, b"X", b"v"));
    t.rec(
        "header_remove reserved",
        hc::header_remove(abi::MSG_REQUEST, b"Host"),
    );

    read_into!(t, "body_read", 4, |b| hc::body_read(abi::MSG_REQUEST, 0, b));
    read_into!(t, "body_read offset", 4, |b| hc::body_read(
        abi::MSG_REQUEST,
        8,
        b
    ));
    read_into!(t, "body_read end", 4, |b| hc::body_read(
        abi::MSG_REQUEST,
        10,
        b
    ));
    read_into!(t, "body_read past", 4, |b| hc::body_read(
        abi::MSG_REQUEST,
        1 << 30,
        b
    ));
    read_into!(t, "body_read negative", 4, |b| hc::body_read(
        abi::MSG_REQUEST,
        -1,
        b
    ));
    read_into!(t, "body_read bad msg", 4, |b| hc::body_read(2, 0, b));
    read_into!(t, "body_read response", 4, |b| hc::body_read(
        abi::MSG_RESPONSE,
        0,
        b
    ));
    t.rec(
        "body_set request",
        hc::body_set(abi::MSG_REQUEST, b"changed"),
    );
    t.rec("body_set bad msg", hc::body_set(2, b""));
    t.rec(
        "body_set 8M+1",
        hc::body_set(abi::MSG_RESPONSE, &vec![0; (8 << 20) + 1]),
    );

    read_into!(t, "value_get absent", 8, |b| hc::value_get(b"k", b));
    t.rec("value_set", hc::value_set(b"k", b"v1", 0));
    t.rec("value_set replace", hc::value_set(b"k", b"v2", 0));
    read_into!(t, "value_get", 8, |b| hc::value_get(b"k", b));
    t.rec("value_set binary", hc::value_set(b"bin", b"\0\r\n", 0));
    t.rec(
        "value_set forward",
        hc::value_set(b"identity-sub", b"alice", abi::VALUE_FORWARD),
    );
    t.rec(
        "value_set forward bad key",
        hc::value_set(b"a b", b"v", abi::VALUE_FORWARD),
    );
    t.rec(
        "value_set forward bad value",
        hc::value_set(b"k2", b"a\r\nb", abi::VALUE_FORWARD),
    );
    t.rec("value_set flags", hc::value_set(b"k2", b"v", 2));
    t.rec("value_set long key", hc::value_set(&[b'k'; 257], b"v", 0));
    t.rec(
        "value_set long value",
        hc::value_set(b"k2", &vec![0; (64 << 10) + 1], 0),
    );
    let mut filled = 0;
    for i in 0..abi::MAX_VALUES {
        if hc::value_set(format!("v{}", i).as_bytes(), b"", 0) == 0 {
            filled += 1;
        }
    }
    t.rec("value_set until full", filled);
    t.rec("value_set replace when full", hc::value_set(b"k", b"v3", 0));

    t.rec(
        "cache_lookup absent",
        hc::cache_lookup(b"probe", &mut [0; 16]),
    );
    t.rec("status_set 200", hc::status_set(200));
    t.rec(
        "body_set response",
        hc::body_set(abi::MSG_RESPONSE, b"0123456789"),
    );
    t.rec("cache_serve absent", hc::cache_serve(b"probe"));
    t.rec(
        "cache_store",
        hc::cache_store(b"probe", b"m1", 60_000, 1_000, b"red\0blue\0"),
    );
    t.rec(
        "cache_store empty key",
        hc::cache_store(b"", b"", 1, 0, b""),
    );
    t.rec("cache_store ttl", hc::cache_store(b"k", b"", -1, 0, b""));
    t.rec(
        "cache_store stale",
        hc::cache_store(b"k", b"", 0, 34_560_000_001, b""),
    );
    t.rec(
        "cache_store empty tag",
        hc::cache_store(b"k", b"", 1, 0, b"a\0\0"),
    );
    t.rec(
        "cache_store long key",
        hc::cache_store(&[b'k'; 4097], b"", 1, 0, b""),
    );
    t.rec(
        "cache_store long meta",
        hc::cache_store(b"k", &[0; 16385], 1, 0, b""),
    );
    t.rec(
        "cache_store many tags",
        hc::cache_store(b"k", b"", 1, 0, &b"t\0".repeat(33)),
    );
    let mut info = [0u8; 18];
    let r = hc::cache_lookup(b"probe", &mut info);
    t.out("cache_lookup meta", r, &info[16..]);
    t.rec(
        "cache_lookup short",
        hc::cache_lookup(b"probe", &mut [0; 15]),
    );
    t.rec("range_apply multi", hc::range_apply(b"bytes=0-1,4-5"));
    t.rec("range_apply long", hc::range_apply(&[b'b'; (16 << 10) + 1]));
    t.rec("range_apply", hc::range_apply(b"bytes=-3"));
    read_into!(t, "content-range", 32, |b| hc::header_get(
        abi::MSG_RESPONSE,
        b"Content-Range",
        b
    ));
    read_into!(t, "range body", 16, |b| hc::body_read(
        abi::MSG_RESPONSE,
        0,
        b
    ));
    t.rec("cache_serve", hc::cache_serve(b"probe"));
    read_into!(t, "served body", 16, |b| hc::body_read(
        abi::MSG_RESPONSE,
        0,
        b
    ));
    t.rec("range_apply unsatisfiable", hc::range_apply(b"bytes=20-"));
    read_into!(t, "content-range 416", 32, |b| hc::header_get(
        abi::MSG_RESPONSE,
        b"Content-Range",
        b
    ));
    t.rec("cache_purge tag", hc::cache_purge(abi::PURGE_TAG, b"blue"));
    t.rec(
        "cache_purge again",
        hc::cache_purge(abi::PURGE_TAG, b"blue"),
    );
    t.rec("cache_purge key", hc::cache_purge(abi::PURGE_KEY, b"probe"));
    t.rec("cache_purge kind", hc::cache_purge(2, b"probe"));
    t.rec("cache_request POST", hc::cache_request(b"edge"));
    t.rec("cache_request name", hc::cache_request(b"bad name"));
    t.rec("cache_response request", hc::cache_response(b"edge", 0));
    t.rec("cache_revalidate", hc::cache_revalidate(b"probe"));
    t.rec("cache_revalidate again", hc::cache_revalidate(b"probe"));
    t.rec("cache_revalidate empty", hc::cache_revalidate(b""));

    let mut res = [0u8; 24];
    let period = 400 * 24 * 3600 * 1000;
    for label in ["ratelimit take", "ratelimit denied"] {
        t.rec(
            label,
            hc::ratelimit_take(b"probe", 1, period, 1, 1, &mut res),
        );
        t.rec("remaining", res[0] as i32);
    }
    t.rec(
        "ratelimit peek",
        hc::ratelimit_take(b"other", 1, period, 1, 0, &mut res),
    );
    let bad = [
        (0, 1000, 1, 1, 24),
        (1, 0, 1, 1, 24),
        (1, period + 1, 1, 1, 24),
        (1, 1000, 0, 1, 24),
        (1, 1000, 1, -1, 24),
        (1, 1000, 1, 1, 23),
    ];
    for (limit, period, burst, cost, len) in bad {
        t.rec(
            "ratelimit invalid",
            hc::ratelimit_take(b"k", limit, period, burst, cost, &mut res[..len]),
        );
    }
    t.rec(
        "ratelimit long key",
        hc::ratelimit_take(&[b'k'; 1025], 1, 1000, 1, 1, &mut res),
    );

    t.rec(
        "metric_define request",
        hc::metric_define(abi::METRIC_COUNTER, b"late"),
    );
    t.rec("metric counter", hc::metric_record(0, 2.5));
    t.rec("metric counter negative", hc::metric_record(0, -1.0));
    t.rec("metric gauge negative", hc::metric_record(1, -3.0));
    t.rec("metric histogram", hc::metric_record(2, 0.25));
    t.rec("metric nan", hc::metric_record(2, f64::NAN));
    t.rec("metric inf", hc::metric_record(1, f64::INFINITY));
    t.rec("metric unknown", hc::metric_record(64, 1.0));
    t.rec("metric negative handle", hc::metric_record(-1, 1.0));
    t.rec("log", hc::log(abi::LEVEL_WARN, b"slow", b"user\0alice\0"));
    t.rec("log odd", hc::log(abi::LEVEL_INFO, b"odd", b"user\0"));
    t.rec(
        "log odd unterminated",
        hc::log(abi::LEVEL_INFO, b"odd", b"a\0b\0c"),
    );
    t.rec(
        "log long",
        hc::log(abi::LEVEL_INFO, &[b'x'; 8000], &[b'y'; 193]),
    );

    t.rec(
        "key_register request",
        hc::key_register(abi::ALG_HS256, abi::KEY_RAW, &[7; 32]),
    );
    t.rec("verify", hc::verify(0, b"msg", &PROBE_MAC));
    t.rec("verify wrong msg", hc::verify(0, b"msh", &PROBE_MAC));
    t.rec("verify short sig", hc::verify(0, b"msg", &PROBE_MAC[..31]));
    t.rec("verify hs384", hc::verify(1, b"msg", &PROBE_MAC_384));
    t.rec("verify hs512", hc::verify(2, b"msg", &PROBE_MAC_512));
    t.rec("verify other alg", hc::verify(3, b"msg", &PROBE_MAC_512));
    t.rec("verify unknown", hc::verify(9, b"msg", &PROBE_MAC));
    read_into!(t, "digest sha256", 32, |b| hc::digest(
        abi::DIGEST_SHA256,
        b"abc",
        b
    ));
    read_into!(t, "digest short", 2, |b| hc::digest(
        abi::DIGEST_SHA256,
        b"abc",
        b
    ));
    read_into!(t, "digest sha384", 48, |b| hc::digest(
        abi::DIGEST_SHA384,
        b"abc",
        b
    ));
    read_into!(t, "digest sha512", 64, |b| hc::digest(
        abi::DIGEST_SHA512,
        b"abc",
        b
    ));
    t.rec(
        "digest keyed",
        hc::digest(abi::DIGEST_KEYED, b"alice", &mut []),
    );
    t.rec("digest unknown", hc::digest(5, b"", &mut []));
    t.rec("token_policy request", hc::token_policy(b""));
    t.rec(
        "token_verify unknown",
        hc::token_verify(99, b"a.b.c", &mut []),
    );
    t.rec("time_now positive", i32::from(hc::time_now() > 0));
    t.rec("random_fill", hc::random_fill(&mut [0; 16]));
}

fn probe_response(t: &mut Transcript) {
    t.rec("status_get response", hc::status_get());
    read_into!(t, "header_names response", 256, |b| hc::header_names(
        abi::MSG_RESPONSE,
        b
    ));
    t.rec(
        "field_set response",
        hc::field_set(abi::FIELD_PATH, b"/late"),
    );
    read_into!(t, "field_get response", 64, |b| hc::field_get(
        abi::FIELD_PATH,
        b
    ));
    t.rec(
        "header_set request",
        hc::header_set(abi::MSG_REQUEST, b"A", b"1"),
    );
    t.rec(
        "header_add request",
        hc::header_add(abi::MSG_REQUEST, b"A", b"1"),
    );
    t.rec(
        "header_remove request",
        hc::header_remove(abi::MSG_REQUEST, b"A"),
    );
    t.rec(
        "header_set request reserved",
        hc::header_set(abi::MSG_REQUEST, b"Host", b"1"),
    );
    read_into!(t, "header_get request", 64, |b| hc::header_get(
        abi::MSG_REQUEST,
        b"x-multi",
        b
    ));
    read_into!(t, "header_values response", 64, |b| hc::header_values(
        abi::MSG_RESPONSE,
        b"x-v",
        b
    ));
    t.rec(
        "header_set response",
        hc::header_set(abi::MSG_RESPONSE, b"X-Probe", b"1"),
    );
    t.rec("body_set request", hc::body_set(abi::MSG_REQUEST, b"late"));
    read_into!(t, "body_read request", 16, |b| hc::body_read(
        abi::MSG_REQUEST,
        0,
        b
    ));
    read_into!(t, "value_get response", 8, |b| hc::value_get(b"k", b));
    t.rec("cache_request response", hc::cache_request(b"edge"));
    t.rec("cache_revalidate response", hc::cache_revalidate(b"k"));
    t.rec("cache_response bad name", hc::cache_response(b"", 0));
    t.rec("cache_response bad option", hc::cache_response(b"edge", 4));
    t.rec(
        "key_register response",
        hc::key_register(abi::ALG_HS256, abi::KEY_RAW, &[7; 32]),
    );
    t.rec("status_set response", hc::status_set(201));
}

/// The probe plugin: configure's transcript is kept and starts every
/// answer's; the response phase appends its own to the body.
#[derive(Default)]
pub struct Probe {
    configured: Vec<u8>,
}

impl Plugin for Probe {
    fn configure(&mut self, _config: &[u8]) -> Result<Features, Error> {
        let mut t = Transcript::default();
        probe_configure(&mut t);
        self.configured = t.0;
        Ok(Features::BOTH)
    }

    fn on_request(&mut self, _req: Request, _resp: Response) -> Action {
        let mut path = [0u8; 16];
        if hc::field_get(abi::FIELD_PATH, &mut path) == 9 && &path[..9] == b"/continue" {
            // Fields left on an answer the plugin does not send reach the
            // client's response (wasm/abi/README.md section 4); the rest
            // of the answer is dropped.
            let _ = hc::header_add(abi::MSG_RESPONSE, b"X-Left", b"1");
            let _ = hc::status_set(429);
            let _ = hc::body_set(abi::MSG_RESPONSE, b"dropped");
            return Action::Continue;
        }
        let mut t = Transcript(self.configured.clone());
        t.0.extend_from_slice(b"-- request\n");
        probe_request(&mut t);
        let _ = hc::status_set(200);
        let _ = hc::body_set(abi::MSG_RESPONSE, &t.0);
        Action::Answer
    }

    fn on_response(&mut self, _req: Request, _resp: Response) -> Action {
        let n = hc::body_read(abi::MSG_RESPONSE, 0, &mut []);
        let mut t = Transcript(vec![0; n.max(0) as usize]);
        let _ = hc::body_read(abi::MSG_RESPONSE, 0, &mut t.0);
        t.0.extend_from_slice(b"-- response\n");
        probe_response(&mut t);
        let _ = hc::body_set(abi::MSG_RESPONSE, &t.0);
        Action::Continue
    }
}
