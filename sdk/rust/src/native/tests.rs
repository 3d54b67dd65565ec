//! Tests of the native host: every host function through a plugin run by
//! `testing::Host`, checked against wasm/abi/README.md (its worked examples
//! where it has them), and the pure parts (ranges, GCRA, lists) directly.

use std::boxed::Box;
use std::string::String;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::hostcall as hc;
use crate::testing::{Host, HttpRequest, HttpResponse, Outcome};
use crate::{Action, Error, Features, Plugin, Request, Response};

type Phase = Box<dyn FnMut() -> Action>;

/// A plugin whose phases are the test's closures, which call the host
/// functions directly.
struct Probe {
    configure: Box<dyn FnMut() -> Result<Features, Error>>,
    request: Phase,
    response: Phase,
}

impl Plugin for Probe {
    fn configure(&mut self, _config: &[u8]) -> Result<Features, Error> {
        (self.configure)()
    }
    fn on_request(&mut self, _: Request, _: Response) -> Action {
        (self.request)()
    }
    fn on_response(&mut self, _: Request, _: Response) -> Action {
        (self.response)()
    }
}

fn cont() -> Action {
    Action::Continue
}

/// A host whose plugin configures with configure and runs request and
/// response in their phases.
fn probe(
    configure: impl FnMut() -> Result<Features, Error> + 'static,
    request: impl FnMut() -> Action + 'static,
    response: impl FnMut() -> Action + 'static,
) -> Host<Probe> {
    let mut h = Host::new(
        Probe {
            configure: Box::new(configure),
            request: Box::new(request),
            response: Box::new(response),
        },
        b"{\"greeting\":\"hi\"}",
    );
    h.quiet();
    h
}

/// Runs f in the request phase of one request for req.
fn in_request(req: HttpRequest, f: impl FnMut() -> Action + 'static) -> Outcome {
    probe(|| Ok(Features::BOTH), f, cont).request(req)
}

/// Runs f in the response phase of one request for req, the origin
/// answering origin.
fn in_response(
    req: HttpRequest,
    origin: HttpResponse,
    f: impl FnMut() -> Action + 'static,
) -> Outcome {
    let mut h = probe(|| Ok(Features::BOTH), cont, f);
    h.set_origin(move |_| origin.clone());
    h.request(req)
}

/// The result of a "buffer + limit" reader as bytes, read with a probe
/// first as a guest does.
fn read(f: impl Fn(&mut [u8]) -> i32) -> Result<Vec<u8>, i32> {
    let n = f(&mut []);
    if n < 0 {
        return Err(n);
    }
    let mut buf = vec![0; n as usize];
    assert_eq!(f(&mut buf), n);
    Ok(buf)
}

#[test]
#[should_panic(expected = "outside a test host")]
fn host_functions_need_a_host() {
    hc::time_now();
}

#[test]
fn configure_phase() {
    let h = probe(
        || {
            assert_eq!(read(hc::config_read).unwrap(), b"{\"greeting\":\"hi\"}");
            let mut b = [0u8; 4];
            assert_eq!(hc::config_read(&mut b), 17);
            assert_eq!(&b, b"{\"gr");
            assert_eq!(hc::field_get(FIELD_PATH, &mut b), ERR_PHASE);
            assert_eq!(hc::status_get(), ERR_PHASE);
            assert_eq!(hc::status_set(200), ERR_PHASE);
            assert_eq!(hc::header_get(MSG_REQUEST, b"a", &mut b), ERR_PHASE);
            assert_eq!(hc::header_set(MSG_RESPONSE, b"a", b"b"), ERR_PHASE);
            assert_eq!(hc::body_read(MSG_REQUEST, 0, &mut b), ERR_PHASE);
            assert_eq!(hc::body_set(MSG_RESPONSE, b""), ERR_PHASE);
            assert_eq!(hc::value_get(b"k", &mut b), ERR_PHASE);
            assert_eq!(hc::value_set(b"k", b"v", 0), ERR_PHASE);
            assert_eq!(hc::cache_lookup(b"k", &mut b), ERR_PHASE);
            assert_eq!(hc::cache_purge(PURGE_KEY, b"k"), ERR_PHASE);
            assert_eq!(hc::cache_request(b"edge"), ERR_PHASE);
            assert_eq!(hc::range_apply(b"bytes=0-1"), ERR_PHASE);
            assert_eq!(
                hc::ratelimit_take(b"k", 1, 1000, 1, 1, &mut [0; 24]),
                ERR_PHASE
            );
            // What configure is for works.
            assert_eq!(hc::metric_define(METRIC_COUNTER, b"hits"), 0);
            assert_eq!(hc::log(LEVEL_INFO, b"configured", b""), 0);
            assert!(hc::time_now() > 0);
            assert_eq!(hc::random_fill(&mut b), 0);
            Ok(Features::REQUEST)
        },
        cont,
        cont,
    );
    assert_eq!(h.features(), FEATURE_REQUEST);
    assert_eq!(h.logs()[0].message, "configured");
}

#[test]
fn configure_failure_reports_the_message() {
    let p = Probe {
        configure: Box::new(|| Err(Error::Msg("greeting: not a string"))),
        request: Box::new(cont),
        response: Box::new(cont),
    };
    match Host::try_new(p, b"") {
        Err(msg) => assert_eq!(msg, "greeting: not a string"),
        Ok(_) => panic!("configure should have failed"),
    }
    // error_set truncates to MaxErrorLen.
    let p = Probe {
        configure: Box::new(|| {
            hc::error_set(&[b'x'; 2000]);
            Err(Error::Reported)
        }),
        request: Box::new(cont),
        response: Box::new(cont),
    };
    assert_eq!(
        Host::try_new(p, b"").err().map(|m| m.len()),
        Some(MAX_ERROR_LEN as usize)
    );
}

#[test]
fn fields() {
    let req = HttpRequest::new("POST", "/v1/items%2F7?a=1&b=2")
        .host("api.example:8443")
        .client_addr("203.0.113.7:51234");
    let out = in_request(req, || {
        let field = |f| String::from_utf8(read(|b| hc::field_get(f, b)).unwrap()).unwrap();
        assert_eq!(field(FIELD_METHOD), "POST");
        assert_eq!(field(FIELD_SCHEME), "http");
        assert_eq!(field(FIELD_HOST), "api.example:8443");
        assert_eq!(field(FIELD_PATH), "/v1/items%2F7");
        assert_eq!(field(FIELD_RAW_QUERY), "a=1&b=2");
        assert_eq!(field(FIELD_PROTO), "HTTP/1.1");
        assert_eq!(field(FIELD_CLIENT_ADDR), "203.0.113.7:51234");
        assert_eq!(field(FIELD_REQUEST_ID), "native-1");
        assert_eq!(hc::field_get(8, &mut []), ERR_INVALID);
        assert_eq!(hc::field_get(-1, &mut []), ERR_INVALID);

        assert_eq!(hc::field_set(FIELD_METHOD, b"PUT"), 0);
        assert_eq!(hc::field_set(FIELD_HOST, b"origin.internal"), 0);
        assert_eq!(hc::field_set(FIELD_PATH, b"/v2/items"), 0);
        assert_eq!(hc::field_set(FIELD_RAW_QUERY, b""), 0);
        for f in [
            FIELD_SCHEME,
            FIELD_PROTO,
            FIELD_CLIENT_ADDR,
            FIELD_REQUEST_ID,
            8,
        ] {
            assert_eq!(hc::field_set(f, b"x"), ERR_INVALID, "field {}", f);
        }
        let bad: [(i32, &[u8]); 9] = [
            (FIELD_METHOD, b"GE T"),
            (FIELD_METHOD, b""),
            (FIELD_HOST, b""),
            (FIELD_HOST, b"a/b"),
            (FIELD_HOST, b"user@host"),
            (FIELD_PATH, b"relative"),
            (FIELD_PATH, b"/a?b"),
            (FIELD_PATH, b"/a b"),
            (FIELD_RAW_QUERY, b"a#b"),
        ];
        for (f, v) in bad {
            assert_eq!(
                hc::field_set(f, v),
                ERR_INVALID,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        let mut long = vec![b'/'; 1];
        long.resize(8193, b'a');
        assert_eq!(hc::field_set(FIELD_PATH, &long), ERR_TOO_LARGE);
        Action::Continue
    });
    assert_eq!(out.request.method, "PUT");
    assert_eq!(out.request.host, "origin.internal");
    assert_eq!(
        (&out.request.path[..], &out.request.query[..]),
        ("/v2/items", "")
    );
    // Fields are read-only in the response phase.
    in_response(HttpRequest::get("/a"), HttpResponse::new(200), || {
        assert_eq!(hc::field_set(FIELD_PATH, b"/b"), ERR_PHASE);
        assert_eq!(read(|b| hc::field_get(FIELD_PATH, b)).unwrap(), b"/a");
        Action::Continue
    });
}

#[test]
fn status() {
    let out = in_request(HttpRequest::get("/"), || {
        assert_eq!(hc::status_get(), 0);
        assert_eq!(hc::status_set(199), ERR_INVALID);
        assert_eq!(hc::status_set(600), ERR_INVALID);
        assert_eq!(hc::status_set(200), 0);
        assert_eq!(hc::status_set(599), 0);
        assert_eq!(hc::status_get(), 599);
        Action::Answer
    });
    assert!(out.answered);
    assert_eq!(out.response.status, 599);
    let out = in_response(HttpRequest::get("/"), HttpResponse::new(404), || {
        assert_eq!(hc::status_get(), 404);
        assert_eq!(hc::status_set(410), 0);
        Action::Continue
    });
    assert_eq!(out.response.status, 410);
}

#[test]
fn headers() {
    let req = HttpRequest::get("/")
        .header("Accept", "text/html")
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .header("Empty", "");
    let out = in_request(req, || {
        // The spec's worked example.
        let mut buf = [0u8; 64];
        assert_eq!(hc::header_get(MSG_REQUEST, b"Accept", &mut buf[..0]), 9);
        assert_eq!(hc::header_get(MSG_REQUEST, b"Accept", &mut buf[..4]), 9);
        assert_eq!(&buf[..4], b"text");
        assert_eq!(hc::header_get(MSG_REQUEST, b"Accept", &mut buf), 9);
        assert_eq!(&buf[..9], b"text/html");
        assert_eq!(
            hc::header_get(MSG_REQUEST, b"Nope", &mut buf),
            ERR_NOT_FOUND
        );
        // Names compare case-insensitively; lists end each item with NUL.
        assert_eq!(
            read(|b| hc::header_get(MSG_REQUEST, b"ACCEPT", b)).unwrap(),
            b"text/html"
        );
        assert_eq!(
            read(|b| hc::header_values(MSG_REQUEST, b"x-MULTI", b)).unwrap(),
            b"one\0two\0"
        );
        assert_eq!(
            read(|b| hc::header_values(MSG_REQUEST, b"Empty", b)).unwrap(),
            b"\0"
        );
        assert_eq!(
            read(|b| hc::header_values(MSG_REQUEST, b"Nope", b)).unwrap(),
            b""
        );
        assert_eq!(
            read(|b| hc::header_names(MSG_REQUEST, b)).unwrap(),
            b"Accept\0X-Multi\0Empty\0"
        );
        assert_eq!(hc::header_get(2, b"Accept", &mut buf), ERR_INVALID);
        assert_eq!(hc::header_values(-1, b"Accept", &mut buf), ERR_INVALID);
        assert_eq!(hc::header_names(2, &mut buf), ERR_INVALID);

        // set replaces every value at the position of the first.
        assert_eq!(hc::header_set(MSG_REQUEST, b"x-multi", b"three"), 0);
        assert_eq!(hc::header_add(MSG_REQUEST, b"X-Added", b"a\tb"), 0);
        assert_eq!(hc::header_remove(MSG_REQUEST, b"empty"), 0);
        assert_eq!(hc::header_remove(MSG_REQUEST, b"Absent"), 0);

        for name in RESERVED {
            assert_eq!(
                hc::header_set(MSG_RESPONSE, name.as_bytes(), b"1"),
                ERR_INVALID,
                "{}",
                name
            );
            let lower = name.to_ascii_lowercase();
            assert_eq!(
                hc::header_add(MSG_REQUEST, lower.as_bytes(), b"1"),
                ERR_INVALID,
                "{}",
                lower
            );
            assert_eq!(
                hc::header_remove(MSG_REQUEST, name.as_bytes()),
                ERR_INVALID,
                "{}",
                name
            );
        }
        for value in [
            &b"a\r\nSet-Cookie: x"[..],
            b"a\nb",
            b"a\0b",
            b"a\x7fb",
            b"\x01",
        ] {
            assert_eq!(
                hc::header_set(MSG_RESPONSE, b"X-Bad", value),
                ERR_INVALID,
                "{:?}",
                value
            );
        }
        for name in [&b""[..], b"X Bad", b"X:Bad", b"X\0"] {
            assert_eq!(
                hc::header_add(MSG_RESPONSE, name, b"v"),
                ERR_INVALID,
                "{:?}",
                name
            );
        }
        assert_eq!(hc::header_set(MSG_RESPONSE, &[b'a'; 256], b"v"), 0);
        assert_eq!(
            hc::header_set(MSG_RESPONSE, &[b'a'; 257], b"v"),
            ERR_INVALID
        );
        assert_eq!(hc::header_set(MSG_RESPONSE, b"X-Big", &[b'v'; 16 << 10]), 0);
        assert_eq!(
            hc::header_set(MSG_RESPONSE, b"X-Big", &[b'v'; (16 << 10) + 1]),
            ERR_TOO_LARGE
        );
        assert_eq!(hc::header_set(2, b"X", b"v"), ERR_INVALID);
        // obs-text is field content.
        assert_eq!(hc::header_set(MSG_RESPONSE, b"X-Latin", b"caf\xe9"), 0);
        assert_eq!(
            read(|b| hc::header_get(MSG_RESPONSE, b"x-latin", b)).unwrap(),
            b"caf\xe9"
        );
        Action::Continue
    });
    let names: Vec<&[u8]> = out.request.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(names, [&b"Accept"[..], b"X-Multi", b"X-Added"]);
    assert_eq!(out.request.headers.get("X-Multi").as_deref(), Some("three"));
    assert_eq!(out.request.headers.values("x-added"), ["a\tb"]);
    // The answer's fields reach the client when the plugin continues.
    assert_eq!(
        out.response.headers.get("X-Big").map(|v| v.len()),
        Some(16 << 10)
    );

    // The request is read-only in the response phase; the response is not.
    let out = in_response(
        HttpRequest::get("/").header("A", "1"),
        HttpResponse::new(200).header("Server", "origin"),
        || {
            assert_eq!(hc::header_set(MSG_REQUEST, b"A", b"2"), ERR_PHASE);
            assert_eq!(hc::header_add(MSG_REQUEST, b"A", b"2"), ERR_PHASE);
            assert_eq!(hc::header_remove(MSG_REQUEST, b"A"), ERR_PHASE);
            assert_eq!(
                read(|b| hc::header_get(MSG_REQUEST, b"a", b)).unwrap(),
                b"1"
            );
            assert_eq!(
                read(|b| hc::header_get(MSG_RESPONSE, b"server", b)).unwrap(),
                b"origin"
            );
            assert_eq!(hc::header_set(MSG_RESPONSE, b"Server", b"wedge"), 0);
            Action::Continue
        },
    );
    assert_eq!(out.response.headers.get("server").as_deref(), Some("wedge"));
}

#[test]
fn bodies() {
    let out = in_request(HttpRequest::new("POST", "/").body(b"0123456789"), || {
        let mut buf = [0u8; 4];
        assert_eq!(hc::body_read(MSG_REQUEST, 0, &mut buf), 10);
        assert_eq!(&buf, b"0123");
        assert_eq!(hc::body_read(MSG_REQUEST, 8, &mut buf), 10);
        assert_eq!(&buf[..2], b"89");
        let mut untouched = [b'x'; 4];
        assert_eq!(hc::body_read(MSG_REQUEST, 10, &mut untouched), 10);
        assert_eq!(hc::body_read(MSG_REQUEST, 1 << 30, &mut untouched), 10);
        assert_eq!(&untouched, b"xxxx");
        assert_eq!(hc::body_read(MSG_REQUEST, -1, &mut buf), ERR_INVALID);
        assert_eq!(hc::body_read(2, 0, &mut buf), ERR_INVALID);
        assert_eq!(hc::body_read(MSG_RESPONSE, 0, &mut buf), 0);
        assert_eq!(hc::body_set(MSG_REQUEST, b"changed"), 0);
        assert_eq!(hc::body_set(MSG_RESPONSE, b"x"), 0);
        assert_eq!(hc::body_set(MSG_RESPONSE, &vec![0; 8 << 20]), 0);
        assert_eq!(
            hc::body_set(MSG_RESPONSE, &vec![0; (8 << 20) + 1]),
            ERR_TOO_LARGE
        );
        assert_eq!(hc::body_set(2, b""), ERR_INVALID);
        assert_eq!(hc::status_set(200), 0);
        assert_eq!(hc::body_set(MSG_RESPONSE, b"answer"), 0);
        Action::Answer
    });
    assert_eq!(out.request.body, b"changed");
    assert_eq!(out.response.body_str(), "answer");

    let mut h = probe(
        || Ok(Features::BOTH),
        cont,
        || {
            assert_eq!(hc::body_set(MSG_REQUEST, b"late"), ERR_PHASE);
            assert_eq!(hc::body_set(MSG_RESPONSE, b"12345"), ERR_TOO_LARGE);
            assert_eq!(hc::body_set(MSG_RESPONSE, b"1234"), 0);
            Action::Continue
        },
    );
    h.set_max_body(4);
    assert_eq!(h.request(HttpRequest::get("/")).response.body, b"1234");
}

#[test]
fn values() {
    let mut h = probe(
        || Ok(Features::BOTH),
        || {
            assert_eq!(hc::value_get(b"k", &mut []), ERR_NOT_FOUND);
            assert_eq!(hc::value_set(b"k", b"v1", 0), 0);
            assert_eq!(hc::value_set(b"k", b"v2", 0), 0);
            assert_eq!(read(|b| hc::value_get(b"k", b)).unwrap(), b"v2");
            assert_eq!(hc::value_set(b"bin", b"\0\r\n", 0), 0);
            assert_eq!(
                hc::value_set(IDENTITY_SUB.as_bytes(), b"alice", VALUE_FORWARD),
                0
            );
            assert_eq!(hc::value_set(b"no space", b"v", VALUE_FORWARD), ERR_INVALID);
            assert_eq!(hc::value_set(b"k2", b"a\r\nb", VALUE_FORWARD), ERR_INVALID);
            assert_eq!(hc::value_set(b"k2", b"v", 2), ERR_INVALID);
            assert_eq!(hc::value_set(&[b'k'; 257], b"v", 0), ERR_TOO_LARGE);
            assert_eq!(
                hc::value_set(b"k2", &vec![0; (64 << 10) + 1], 0),
                ERR_TOO_LARGE
            );
            for i in 3..MAX_VALUES {
                assert_eq!(hc::value_set(std::format!("v{}", i).as_bytes(), b"", 0), 0);
            }
            assert_eq!(hc::value_set(b"one-too-many", b"", 0), ERR_TOO_LARGE);
            assert_eq!(hc::value_set(b"k", b"replacing is fine", 0), 0);
            Action::Continue
        },
        || {
            // Values live until the response is written.
            assert_eq!(
                read(|b| hc::value_get(b"k", b)).unwrap(),
                b"replacing is fine"
            );
            Action::Continue
        },
    );
    let out = h.request(HttpRequest::get("/"));
    assert_eq!(out.values.len(), MAX_VALUES as usize);
    assert_eq!(out.value("identity-sub"), Some(&b"alice"[..]));
    assert!(out
        .values
        .iter()
        .any(|v| v.key == b"identity-sub" && v.forward));
    assert!(out.values.iter().any(|v| v.key == b"bin" && !v.forward));
    // The next request starts with none.
    let mut h = probe(
        || Ok(Features::REQUEST),
        || {
            assert_eq!(hc::value_get(b"k", &mut []), ERR_NOT_FOUND);
            Action::Continue
        },
        cont,
    );
    h.request(HttpRequest::get("/"));
}

#[test]
fn logs_and_metrics() {
    let mut h = probe(
        || {
            assert_eq!(hc::metric_define(METRIC_COUNTER, b"hello_total"), 0);
            assert_eq!(hc::metric_define(METRIC_GAUGE, b"depth"), 1);
            assert_eq!(hc::metric_define(METRIC_HISTOGRAM, b"latency_seconds"), 2);
            assert_eq!(hc::metric_define(METRIC_COUNTER, b"hello_total"), 0);
            assert_eq!(hc::metric_define(METRIC_GAUGE, b"hello_total"), ERR_INVALID);
            for bad in [&b""[..], b"Upper", b"1st", b"has-dash", &[b'a'; 65]] {
                assert_eq!(
                    hc::metric_define(METRIC_COUNTER, bad),
                    ERR_INVALID,
                    "{:?}",
                    bad
                );
            }
            assert_eq!(hc::metric_define(3, b"kind"), ERR_INVALID);
            assert_eq!(hc::metric_define(METRIC_COUNTER, &[b'a'; 64]), 3);
            for i in 4..MAX_METRICS {
                assert_eq!(
                    hc::metric_define(METRIC_COUNTER, std::format!("m{}", i).as_bytes()),
                    i
                );
            }
            assert_eq!(
                hc::metric_define(METRIC_COUNTER, b"one_too_many"),
                ERR_TOO_LARGE
            );
            Ok(Features::REQUEST)
        },
        || {
            assert_eq!(hc::metric_define(METRIC_COUNTER, b"late"), ERR_PHASE);
            assert_eq!(hc::metric_record(0, 1.0), 0);
            assert_eq!(hc::metric_record(0, 2.5), 0);
            assert_eq!(hc::metric_record(0, -1.0), ERR_INVALID);
            assert_eq!(hc::metric_record(1, -3.0), 0);
            assert_eq!(hc::metric_record(1, 7.0), 0);
            assert_eq!(hc::metric_record(2, 0.25), 0);
            assert_eq!(hc::metric_record(2, 0.5), 0);
            assert_eq!(hc::metric_record(2, f64::NAN), ERR_INVALID);
            assert_eq!(hc::metric_record(1, f64::INFINITY), ERR_INVALID);
            assert_eq!(hc::metric_record(64, 1.0), ERR_NOT_FOUND);
            assert_eq!(hc::metric_record(-1, 1.0), ERR_NOT_FOUND);

            assert_eq!(
                hc::log(LEVEL_WARN, b"slow", b"user\0alice\0took\0long\0"),
                0
            );
            assert_eq!(hc::log(LEVEL_DEBUG, b"no attrs", b""), 0);
            assert_eq!(hc::log(LEVEL_INFO, b"odd", b"user\0"), ERR_INVALID);
            assert_eq!(hc::log(LEVEL_INFO, b"odd", b"a\0b\0c"), ERR_INVALID);
            assert_eq!(
                hc::log(LEVEL_INFO, &[b'x'; 8000], &[b'y'; 193]),
                ERR_TOO_LARGE
            );
            Action::Continue
        },
        cont,
    );
    h.request(HttpRequest::get("/"));
    let m = h.metric("hello_total").unwrap();
    assert_eq!(
        (m.kind, m.value),
        (crate::testing::MetricKind::Counter, 3.5)
    );
    assert_eq!(h.metric("depth").unwrap().value, 7.0);
    assert_eq!(
        h.metric("latency_seconds").unwrap().observations,
        [0.25, 0.5]
    );
    assert_eq!(h.metrics().len(), MAX_METRICS as usize);
    let logs = h.take_logs();
    assert_eq!(logs.len(), 2);
    assert_eq!((logs[0].level, &logs[0].message[..]), (LEVEL_WARN, "slow"));
    assert_eq!(logs[0].attr("user"), Some("alice"));
    assert_eq!(logs[0].attr("request_id"), Some("native-1"));
    assert_eq!(
        std::format!("{}", logs[0]),
        "WARN \"slow\" user=\"alice\" took=\"long\" request_id=\"native-1\""
    );
    assert_eq!(logs[1].level, LEVEL_DEBUG);
    assert!(h.logs().is_empty());
}

#[test]
fn clock_and_random() {
    let mut h = probe(
        || Ok(Features::REQUEST),
        || {
            assert_eq!(hc::time_now(), 1_700_000_000_123_000_000);
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            assert_eq!(hc::random_fill(&mut a), 0);
            assert_eq!(hc::random_fill(&mut b), 0);
            assert_ne!(a, b);
            assert_eq!(hc::random_fill(&mut []), 0);
            Action::Continue
        },
        cont,
    );
    h.set_time(1_700_000_000_000_000_000);
    h.advance(123);
    h.request(HttpRequest::get("/"));
}

#[test]
fn cache() {
    let t0 = 1_700_000_000_000_000_000;
    // Miss: store the origin's response in the response phase.
    let mut h = probe(
        || Ok(Features::BOTH),
        || {
            let mut info = [0u8; 18];
            match hc::cache_lookup(b"k", &mut info) {
                ERR_NOT_FOUND => Action::Continue,
                18 => {
                    // The spec's worked example: stored 1.5 s ago, ttl 60000, meta m1.
                    assert_eq!(
                        info,
                        [0xdc, 5, 0, 0, 0, 0, 0, 0, 0x84, 0xe4, 0, 0, 0, 0, 0, 0, b'm', b'1']
                    );
                    assert_eq!(hc::cache_lookup(b"k", &mut info[..15]), 18);
                    assert_eq!(hc::cache_serve(b"k"), 200);
                    assert_eq!(hc::value_set(b"served", b"", 0), 0);
                    Action::Answer
                }
                n => panic!("cache_lookup: {}", n),
            }
        },
        || {
            if hc::status_get() == 200 && hc::value_get(b"served", &mut []) == ERR_NOT_FOUND {
                assert_eq!(hc::cache_store(b"k", b"m1", 60_000, 1_000, b"t1\0t2\0"), 0);
            }
            Action::Continue
        },
    );
    h.set_time(t0);
    h.set_origin(|_| {
        HttpResponse::new(200)
            .header("ETag", "\"v1\"")
            .body(b"0123456789")
    });
    let out = h.request(HttpRequest::get("/a"));
    assert!(!out.answered);
    assert_eq!(h.cached(b"k").map(|r| r.body.len()), Some(10));
    h.set_origin(|_| panic!("a hit must not reach the origin"));
    h.advance(1_500);
    let out = h.request(HttpRequest::get("/a"));
    assert!(out.answered);
    assert_eq!(out.response.body_str(), "0123456789");
    assert_eq!(out.response.headers.get("etag").as_deref(), Some("\"v1\""));
    // Gone once the TTL and the stale window have passed.
    h.advance(59_499);
    assert!(h.cached(b"k").is_some());
    h.advance(1);
    assert!(h.cached(b"k").is_none());

    let out = in_response(
        HttpRequest::get("/"),
        HttpResponse::new(200).body(b"x"),
        || {
            assert_eq!(hc::cache_store(b"a", b"", 1000, 0, b"red\0"), 0);
            assert_eq!(hc::cache_store(b"b", b"", 1000, 0, b"red\0blue"), 0);
            assert_eq!(hc::cache_store(b"c", b"", 1000, 0, b""), 0);
            assert_eq!(hc::cache_purge(PURGE_TAG, b"red"), 2);
            assert_eq!(hc::cache_purge(PURGE_TAG, b"red"), 0);
            assert_eq!(hc::cache_purge(PURGE_KEY, b"c"), 1);
            assert_eq!(hc::cache_purge(2, b"c"), ERR_INVALID);
            assert_eq!(hc::cache_serve(b"c"), ERR_NOT_FOUND);
            assert_eq!(hc::cache_lookup(b"c", &mut [0; 16]), ERR_NOT_FOUND);

            assert_eq!(hc::cache_store(b"", b"", 1000, 0, b""), ERR_INVALID);
            assert_eq!(hc::cache_store(b"k", b"", -1, 0, b""), ERR_INVALID);
            assert_eq!(hc::cache_store(b"k", b"", 0, -1, b""), ERR_INVALID);
            assert_eq!(
                hc::cache_store(b"k", b"", MAX_CACHE_MS + 1, 0, b""),
                ERR_INVALID
            );
            assert_eq!(hc::cache_store(b"k", b"", 1000, 0, b"a\0\0"), ERR_INVALID);
            assert_eq!(
                hc::cache_store(&[b'k'; 4097], b"", 1000, 0, b""),
                ERR_TOO_LARGE
            );
            assert_eq!(
                hc::cache_store(b"k", &[0; 16385], 1000, 0, b""),
                ERR_TOO_LARGE
            );
            assert_eq!(
                hc::cache_store(b"k", b"", 1000, 0, &b"t\0".repeat(33)),
                ERR_TOO_LARGE
            );
            assert_eq!(hc::cache_store(b"k", b"", 1000, 0, &b"t\0".repeat(32)), 0);

            // Not natively: the RFC 9111 engine and background revalidation.
            assert_eq!(hc::cache_response(b"edge", 0), ERR_UNAVAILABLE);
            assert_eq!(hc::cache_response(b"bad name", 0), ERR_INVALID);
            assert_eq!(hc::cache_response(b"edge", 4), ERR_INVALID);
            assert_eq!(hc::cache_request(b"edge"), ERR_PHASE);
            assert_eq!(hc::cache_revalidate(b"k"), ERR_PHASE);
            Action::Continue
        },
    );
    assert_eq!(out.response_error, None);

    in_request(HttpRequest::new("POST", "/"), || {
        // A response without a status is no response to store.
        assert_eq!(hc::cache_store(b"k", b"", 1000, 0, b""), ERR_INVALID);
        assert_eq!(hc::cache_request(b"edge"), ERR_INVALID); // POST
        assert_eq!(hc::cache_revalidate(b""), ERR_INVALID);
        assert_eq!(hc::cache_revalidate(&[b'k'; 4097]), ERR_TOO_LARGE);
        assert_eq!(hc::cache_revalidate(b"k"), 1);
        assert_eq!(hc::cache_response(b"edge", 0), ERR_PHASE);
        Action::Continue
    });
    in_request(HttpRequest::get("/"), || {
        assert_eq!(hc::cache_request(b"edge"), ERR_UNAVAILABLE);
        assert_eq!(hc::cache_request(b""), ERR_INVALID);
        Action::Continue
    });

    let mut h = probe(
        || Ok(Features::REQUEST),
        || {
            assert_eq!(hc::cache_lookup(b"k", &mut []), ERR_UNAVAILABLE);
            assert_eq!(hc::cache_serve(b"k"), ERR_UNAVAILABLE);
            assert_eq!(hc::cache_purge(PURGE_KEY, b"k"), ERR_UNAVAILABLE);
            assert_eq!(hc::status_set(200), 0);
            assert_eq!(hc::cache_store(b"k", b"", 1, 0, b""), ERR_UNAVAILABLE);
            assert_eq!(hc::cache_revalidate(b"k"), ERR_UNAVAILABLE);
            Action::Continue
        },
        cont,
    );
    h.without_cache();
    h.request(HttpRequest::get("/"));
}

/// The spec's worked example of cache_revalidate: a stale entry under `k`
/// with ETag "v1" is served at once and revalidated after, the origin
/// answering 304 and the response phase freshening the entry.
#[test]
fn revalidation_worked_example() {
    let mut h = probe(
        || Ok(Features::BOTH),
        || {
            let mut info = [0u8; 16];
            if hc::cache_lookup(b"k", &mut info) < 0 {
                return Action::Continue; // the first request fills the cache
            }
            let ttl_left = i64::from_le_bytes(info[8..].try_into().unwrap());
            if ttl_left > 0 {
                assert_eq!(hc::cache_serve(b"k"), 200);
                return Action::Answer;
            }
            assert_eq!(hc::header_set(MSG_REQUEST, b"If-None-Match", b"\"v1\""), 0);
            assert_eq!(hc::value_set(b"state", b"revalidating k", 0), 0);
            assert_eq!(hc::cache_revalidate(b"k"), 1);
            assert_eq!(hc::cache_revalidate(b"k"), 0); // one per request
            assert_eq!(hc::value_set(b"state", b"hit", 0), 0);
            assert_eq!(hc::cache_serve(b"k"), 200);
            Action::Answer
        },
        || {
            let mut state = [0u8; 32];
            let n = hc::value_get(b"state", &mut state);
            if n < 0 {
                assert_eq!(hc::cache_store(b"k", b"", 60_000, 60_000, b""), 0);
            } else if &state[..n as usize] == b"revalidating k" && hc::status_get() == 304 {
                assert_eq!(hc::cache_serve(b"k"), 200);
                assert_eq!(hc::cache_store(b"k", b"", 60_000, 60_000, b""), 0);
            }
            Action::Continue
        },
    );
    h.set_time(1_700_000_000_000_000_000);
    h.set_origin(|req| match req.headers.get("If-None-Match").as_deref() {
        Some("\"v1\"") => HttpResponse::new(304),
        _ => HttpResponse::new(200)
            .header("ETag", "\"v1\"")
            .body(b"v1 body"),
    });
    let first = h.request(HttpRequest::get("/a"));
    assert!(first.background.is_none());
    h.advance(60_001);
    let stale = h.request(HttpRequest::get("/a"));
    // The client gets the stale response at once.
    assert!(stale.answered);
    assert_eq!(stale.response.body_str(), "v1 body");
    assert_eq!(stale.value("state"), Some(&b"hit"[..]));
    // Then the origin gets the copy made at the call, and answers 304.
    let bg = stale.background.expect("a background revalidation");
    assert_eq!(
        bg.request.headers.get("if-none-match").as_deref(),
        Some("\"v1\"")
    );
    assert_eq!(bg.value("state"), Some(&b"revalidating k"[..]));
    assert_eq!(bg.response.status, 200);
    assert_eq!(bg.response_error, None);
    // The entry is fresh again.
    h.set_origin(|_| panic!("a fresh entry must not reach the origin"));
    h.advance(59_999);
    let fresh = h.request(HttpRequest::get("/a"));
    assert!(fresh.answered && fresh.background.is_none());

    // A request phase that does not answer drops its revalidation.
    let out = in_request(HttpRequest::get("/"), || {
        assert_eq!(hc::cache_revalidate(b"k"), 1);
        Action::Continue
    });
    assert!(out.background.is_none());
}

#[test]
fn cache_info_rounds_toward_zero() {
    // Go's Duration.Milliseconds: age and TTL left each truncate from ns.
    let mut h = probe(
        || Ok(Features::BOTH),
        || {
            let mut info = [0u8; 16];
            if hc::cache_lookup(b"k", &mut info) == 16 {
                let age = i64::from_le_bytes(info[..8].try_into().unwrap());
                let ttl = i64::from_le_bytes(info[8..].try_into().unwrap());
                assert_eq!((age, ttl), (1500, 58499));
                assert_eq!(hc::value_set(b"checked", b"", 0), 0);
            }
            Action::Continue
        },
        || {
            if hc::cache_lookup(b"k", &mut []) == ERR_NOT_FOUND {
                assert_eq!(hc::cache_store(b"k", b"", 60_000, 0, b""), 0);
            }
            Action::Continue
        },
    );
    h.set_time(1_700_000_000_000_000_000);
    h.request(HttpRequest::get("/"));
    h.set_time(1_700_000_001_500_500_000);
    assert!(h.request(HttpRequest::get("/")).value("checked").is_some());
}

#[test]
fn range_apply_worked_example() {
    let out = in_response(
        HttpRequest::get("/"),
        HttpResponse::new(200).body(b"0123456789"),
        || {
            assert_eq!(hc::range_apply(b"bytes=0-1,4-5"), 200);
            assert_eq!(hc::range_apply(&[b'b'; (16 << 10) + 1]), ERR_TOO_LARGE);
            assert_eq!(hc::range_apply(b"bytes=-3"), 206);
            assert_eq!(
                read(|b| hc::header_get(MSG_RESPONSE, b"Content-Range", b)).unwrap(),
                b"bytes 7-9/10"
            );
            // A 206 is not a whole representation: no second cut.
            assert_eq!(hc::range_apply(b"bytes=0-0"), 206);
            Action::Continue
        },
    );
    assert_eq!(out.response.body, b"789");
    let out = in_response(
        HttpRequest::get("/"),
        HttpResponse::new(200).body(b"0123456789"),
        || {
            assert_eq!(hc::range_apply(b"bytes=20-"), 416);
            Action::Continue
        },
    );
    assert_eq!((out.response.status, out.response.body.len()), (416, 0));
    assert_eq!(
        out.response.headers.get("content-range").as_deref(),
        Some("bytes */10")
    );
    in_request(HttpRequest::get("/"), || {
        assert_eq!(hc::range_apply(b"bytes=0-1"), 0); // no answer yet
        Action::Continue
    });
}

#[test]
fn ratelimit() {
    let mut h = probe(
        || Ok(Features::REQUEST),
        || {
            let mut r = [0u8; 24];
            let dec = |r: &[u8; 24]| {
                let v = |i: usize| {
                    i64::from_le_bytes([
                        r[i],
                        r[i + 1],
                        r[i + 2],
                        r[i + 3],
                        r[i + 4],
                        r[i + 5],
                        r[i + 6],
                        r[i + 7],
                    ])
                };
                [v(0), v(8), v(16)]
            };
            // The spec's worked example.
            assert_eq!(hc::ratelimit_take(b"u", 10, 1000, 2, 1, &mut r), 1);
            assert_eq!(dec(&r), [1, 100, 0]);
            assert_eq!(hc::ratelimit_take(b"u", 10, 1000, 2, 1, &mut r), 1);
            assert_eq!(dec(&r), [0, 200, 0]);
            assert_eq!(hc::ratelimit_take(b"u", 10, 1000, 2, 1, &mut r), 0);
            assert_eq!(dec(&r), [0, 200, 100]);
            for (limit, period, burst, cost, len) in [
                (0, 1000, 1, 1, 24),
                (1, 0, 1, 1, 24),
                (1, MAX_CACHE_MS + 1, 1, 1, 24),
                (1, 1000, 0, 1, 24),
                (1, 1000, 1, -1, 24),
                (1, 1000, 1, 1, 23),
            ] {
                assert_eq!(
                    hc::ratelimit_take(b"u", limit, period, burst, cost, &mut r[..len]),
                    ERR_INVALID
                );
            }
            assert_eq!(
                hc::ratelimit_take(&[b'k'; 1025], 1, 1000, 1, 1, &mut r),
                ERR_TOO_LARGE
            );
            Action::Continue
        },
        cont,
    );
    h.set_time(1_700_000_000_000_000_000);
    h.request(HttpRequest::get("/"));
    // The limiter belongs to the host: 100 ms later one unit is back.
    h.advance(100);
    let p = h.plugin();
    p.request = Box::new(|| {
        let mut r = [0u8; 24];
        assert_eq!(hc::ratelimit_take(b"u", 10, 1000, 2, 1, &mut r), 1);
        assert_eq!(hc::ratelimit_take(b"u", 10, 1000, 2, 1, &mut r), 0);
        Action::Continue
    });
    h.request(HttpRequest::get("/"));
}

#[test]
fn crypto() {
    use sha2::{hmac, sum, Sha256, Sha384, Sha512};
    let secret = [7u8; 32];
    let mut h = probe(
        move || {
            assert_eq!(hc::key_register(ALG_HS256, KEY_RAW, &secret), 0);
            assert_eq!(hc::key_register(ALG_HS256, KEY_RAW, &secret), 0);
            assert_eq!(hc::key_register(ALG_HS256, KEY_RAW, &[8; 40]), 1);
            assert_eq!(hc::key_register(ALG_HS384, KEY_RAW, &[8; 48]), 2);
            assert_eq!(hc::key_register(ALG_HS512, KEY_RAW, &[8; 64]), 3);
            // A key is bound to its algorithm: the same bytes for another are another key.
            assert_eq!(hc::key_register(ALG_HS512, KEY_RAW, &[8; 64]), 3);
            assert_eq!(hc::key_register(ALG_HS384, KEY_RAW, &[8; 64]), 4);
            for (alg, short) in [(ALG_HS256, 31), (ALG_HS384, 47), (ALG_HS512, 63)] {
                assert_eq!(hc::key_register(alg, KEY_RAW, &vec![8; short]), ERR_INVALID);
            }
            assert_eq!(hc::key_register(0, KEY_RAW, &secret), ERR_INVALID);
            assert_eq!(hc::key_register(13, KEY_RAW, &secret), ERR_INVALID);
            assert_eq!(hc::key_register(ALG_HS256, 3, &secret), ERR_INVALID);
            assert_eq!(
                hc::key_register(ALG_RS256, KEY_PKIX, b"der"),
                ERR_UNAVAILABLE
            );
            assert_eq!(hc::key_register(ALG_HS256, KEY_JWK, b"{}"), ERR_UNAVAILABLE);
            assert_eq!(hc::token_policy(b""), ERR_UNAVAILABLE);
            Ok(Features::REQUEST)
        },
        move || {
            assert_eq!(hc::key_register(ALG_HS256, KEY_RAW, &secret), ERR_PHASE);
            assert_eq!(hc::token_policy(b""), ERR_PHASE);
            assert_eq!(hc::token_verify(0, b"a.b.c", &mut []), ERR_NOT_FOUND);
            let mac = hmac::<Sha256>(&secret, b"msg");
            assert_eq!(hc::verify(0, b"msg", &mac), 1);
            assert_eq!(hc::verify(0, b"msh", &mac), 0);
            assert_eq!(hc::verify(1, b"msg", &mac), 0);
            assert_eq!(hc::verify(0, b"msg", &mac[..31]), 0);
            assert_eq!(hc::verify(2, b"msg", &hmac::<Sha384>(&[8; 48], b"msg")), 1);
            assert_eq!(
                hc::verify(3, b"msg", &hmac::<Sha512<64>>(&[8; 64], b"msg")),
                1
            );
            assert_eq!(
                hc::verify(4, b"msg", &hmac::<Sha512<64>>(&[8; 64], b"msg")),
                0
            );
            assert_eq!(hc::verify(5, b"msg", &mac), ERR_NOT_FOUND);
            assert_eq!(hc::verify(-1, b"msg", &mac), ERR_NOT_FOUND);

            let mut d = [0u8; 32];
            assert_eq!(hc::digest(DIGEST_SHA256, b"abc", &mut d), 32);
            assert_eq!(&d[..4], [0xba, 0x78, 0x16, 0xbf]);
            assert_eq!(&d[28..], [0xf2, 0x00, 0x15, 0xad]);
            let mut short = [0u8; 4];
            assert_eq!(hc::digest(DIGEST_SHA256, b"abc", &mut short), 32);
            assert_eq!(short, [0xba, 0x78, 0x16, 0xbf]);
            let mut d = [0u8; 64];
            assert_eq!(hc::digest(DIGEST_SHA384, b"abc", &mut d), 48);
            assert_eq!(&d[..48], &sum::<Sha384>(b"abc")[..]);
            assert_eq!(hc::digest(DIGEST_SHA512, b"abc", &mut d), 64);
            assert_eq!(&d[..], &sum::<Sha512<64>>(b"abc")[..]);
            let (mut k1, mut k2) = ([0u8; 32], [0u8; 32]);
            assert_eq!(hc::digest(DIGEST_KEYED, b"alice", &mut k1), 32);
            assert_eq!(hc::digest(DIGEST_KEYED, b"alice", &mut k2), 32);
            assert_eq!(k1, k2);
            assert_ne!(&k1[..], &sum::<Sha256>(b"alice")[..]);
            assert_eq!(hc::digest(5, b"", &mut []), ERR_INVALID);
            Action::Continue
        },
        cont,
    );
    h.request(HttpRequest::get("/"));
}

#[test]
fn fields_left_on_a_continuing_answer_reach_the_client() {
    let mut h = probe(
        || Ok(Features::BOTH),
        || {
            assert_eq!(
                hc::header_add(MSG_RESPONSE, b"RateLimit", b"\"u\";r=4;t=12"),
                0
            );
            assert_eq!(hc::status_set(429), 0);
            assert_eq!(hc::body_set(MSG_RESPONSE, b"dropped"), 0);
            Action::Continue
        },
        || {
            // The plugin's own response phase sees them, on the origin's response.
            assert_eq!(
                read(|b| hc::header_get(MSG_RESPONSE, b"ratelimit", b)).unwrap(),
                b"\"u\";r=4;t=12"
            );
            assert_eq!(hc::status_get(), 201);
            Action::Continue
        },
    );
    h.set_origin(|req| {
        assert!(req.headers.get("RateLimit").is_none());
        HttpResponse::new(201)
            .header("Server", "origin")
            .body(b"made")
    });
    let out = h.request(HttpRequest::get("/"));
    assert!(!out.answered);
    assert_eq!(out.response.status, 201);
    assert_eq!(out.response.body_str(), "made");
    let names: Vec<&[u8]> = out.response.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(names, [&b"Server"[..], b"RateLimit"]);
}

#[test]
fn failure_policy() {
    let failing = || {
        hc::error_set(b"no greeting");
        Action::Fail
    };
    // Fail closed: 503, the origin not asked, the response phase still runs.
    let mut h = probe(
        || Ok(Features::BOTH),
        failing,
        || {
            assert_eq!(hc::status_get(), 503);
            Action::Continue
        },
    );
    h.set_origin(|_| panic!("a failed-closed request must not reach the origin"));
    let out = h.request(HttpRequest::get("/"));
    assert!(out.answered);
    assert_eq!(
        (out.response.status, &out.response.body_str()[..]),
        (503, "Service Unavailable\n")
    );
    assert_eq!(
        out.request_error.as_deref(),
        Some("request phase failed (action 2): no greeting")
    );

    // Fail open: as if it continued.
    let mut h = probe(|| Ok(Features::BOTH), failing, cont);
    h.fail_open(true);
    let out = h.request(HttpRequest::get("/"));
    assert!(!out.answered);
    assert_eq!(out.response.status, 200);
    assert!(out.request_error.is_some());

    // An answer without a status is a failure.
    let out = in_request(HttpRequest::get("/"), || Action::Answer);
    assert_eq!(out.response.status, 503);
    assert_eq!(
        out.request_error.as_deref(),
        Some("request phase answered without setting a status")
    );

    // A failed response phase.
    let out = in_response(HttpRequest::get("/"), HttpResponse::new(200), failing);
    assert_eq!(out.response.status, 503);
    assert_eq!(
        out.response_error.as_deref(),
        Some("response phase failed (action 2): no greeting")
    );
    let mut h = probe(|| Ok(Features::BOTH), cont, failing);
    h.fail_open(true);
    let out = h.request(HttpRequest::get("/"));
    assert_eq!(
        (out.response.status, out.response_error.is_some()),
        (200, true)
    );
}

#[test]
fn features_pick_the_phases() {
    let mut h = probe(
        || Ok(Features::RESPONSE),
        || panic!("no request phase was asked for"),
        || {
            assert_eq!(hc::header_set(MSG_RESPONSE, b"X-Seen", b"1"), 0);
            Action::Continue
        },
    );
    let out = h.request(HttpRequest::get("/"));
    assert_eq!(out.response.headers.get("X-Seen").as_deref(), Some("1"));
    let mut h = probe(
        || Ok(Features::REQUEST),
        cont,
        || panic!("no response phase was asked for"),
    );
    assert_eq!(h.request(HttpRequest::get("/")).response.status, 200);
}

#[test]
fn a_panic_leaves_the_host_usable() {
    let mut h = probe(|| Ok(Features::REQUEST), || panic!("boom"), cont);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        h.request(HttpRequest::get("/"))
    }));
    assert!(r.is_err());
    h.plugin().request = Box::new(|| {
        assert_eq!(hc::status_set(204), 0);
        Action::Answer
    });
    assert_eq!(h.request(HttpRequest::get("/")).response.status, 204);
}

#[test]
fn ranges_as_the_go_host() {
    use Range::*;
    let cases: [(&str, Range); 14] = [
        ("bytes=0-99", Satisfiable(0, 9)),
        ("bytes=2-4", Satisfiable(2, 4)),
        ("BYTES=7-", Satisfiable(7, 9)),
        ("bytes=-3", Satisfiable(7, 9)),
        ("bytes=-30", Satisfiable(0, 9)),
        ("bytes= 1-2 ,", Satisfiable(1, 2)),
        ("bytes=20-", Unsatisfiable),
        ("bytes=-0", Unsatisfiable),
        ("bytes=0-1,4-5", Ignore),
        ("bytes=4-2", Ignore),
        ("bytes=-", Ignore),
        ("bytes =0-1", Ignore),
        ("items=0-1", Ignore),
        ("bytes=99999999999999999999999-", Unsatisfiable),
    ];
    for (v, want) in cases {
        assert_eq!(parse_range(v.as_bytes(), 10), want, "{}", v);
    }
}

#[test]
fn gcra_worked_example() {
    // wasm/abi/README.md: limit 10 per 1000 ms, burst 2, three takes at once.
    let mut rates = Vec::new();
    let t = 1_000_000_000_000;
    assert_eq!(
        gcra(&mut rates, b"k", t, 10, 1000, 2, 1),
        (true, [1, 100, 0])
    );
    assert_eq!(
        gcra(&mut rates, b"k", t, 10, 1000, 2, 1),
        (true, [0, 200, 0])
    );
    assert_eq!(
        gcra(&mut rates, b"k", t, 10, 1000, 2, 1),
        (false, [0, 200, 100])
    );
    // A peek spends nothing and stores nothing for an unknown key.
    assert_eq!(
        gcra(&mut rates, b"other", t, 10, 1000, 2, 0),
        (true, [2, 0, 0])
    );
    assert_eq!(rates.len(), 1);
    // 100 ms later one unit is back.
    assert_eq!(
        gcra(&mut rates, b"k", t + 100_000_000, 10, 1000, 2, 1),
        (true, [0, 200, 0])
    );
    // Once the TAT has passed the key is at its full burst and forgotten.
    let later = t + 10_000_000_000;
    assert_eq!(
        gcra(&mut rates, b"k", later, 10, 1000, 2, 0),
        (true, [2, 0, 0])
    );
    assert!(rates.is_empty());
}

/// The probe of src/native/probe.rs, which Go's TestNativeHost also runs
/// as Wasm in the real host.
mod probe {
    extern crate std;

    use crate::{abi, hostcall as hc, Action, Error, Features, Plugin, Request, Response};
    use std::vec::Vec;
    use std::{format, vec};

    include!("probe.rs");
}

/// The request the probe is sent, here and as Wasm (sdk/rust/native_test.go).
fn probe_request() -> HttpRequest {
    let mut req = HttpRequest::new("POST", "/probe/a%2Fb?x=1&y=2")
        .host("api.example:8443")
        .client_addr("203.0.113.7:51234")
        .header("Accept", "text/html")
        .header("X-Multi", "one")
        .header("x-multi", "two")
        .header("Empty", "")
        .body(b"0123456789");
    req.scheme = String::from("https");
    req
}

#[test]
fn probe_transcript() {
    let mut h = Host::new(probe::Probe::default(), probe::PROBE_CONFIG);
    h.quiet();
    let out = h.request(probe_request());
    assert_eq!(out.response.status, 201);
    assert!(out.background.is_some()); // it called cache_revalidate
    let text = out.response.body_str();
    // A few lines the spec fixes; Go compares every line with the real host's.
    for line in [
        "config_read 14 \"{\\\"probe\\\":true}\"\n",
        "field_get configure -3 \"\"\n",
        "header_values 8 \"one\\x00two\\x00\"\n",
        "header_names after 23 \"Accept\\x00X-Multi\\x00X-Added\\x00\"\n",
        "range_apply 206\n",
        "content-range 12 \"bytes 7-9/10\"\n",
        "verify 1\n",
        "-- response\n",
        "status_set response 0\n",
    ] {
        assert!(
            text.contains(line),
            "no {:?} in the transcript:\n{}",
            line,
            text
        );
    }
    // A request the probe continues, to the origin of TestNativeHost.
    h.set_origin(|_| {
        HttpResponse::new(201)
            .header("Server", "origin")
            .body(b"origin\n")
    });
    let cont = h.request(HttpRequest::get("/continue"));
    assert!(!cont.answered);
    let text = cont.response.body_str();
    assert!(
        text.contains("header_names response 14 \"Server\\x00X-Left\\x00\"\n"),
        "{}",
        text
    );
    if let Some(path) = std::env::var_os("WEDGE_PROBE_OUT") {
        let mut both = out.response.body;
        both.extend_from_slice(b"== continue\n");
        both.extend_from_slice(&cont.response.body);
        std::fs::write(path, both).unwrap();
    }
}
