//! Tests of the safe layer (lib.rs and the modules it re-exports) through
//! the native host, which follows the edge's rules (the native helper's
//! probe holds it to the real host): each test is a plugin whose phases
//! call the wrappers and assert what they return.

extern crate std;

use std::string::String;
use std::vec::Vec;

use crate::testing::{Host, HttpRequest, HttpResponse};
use crate::*;

/// A plugin made of two closures, one per phase.
struct Phases<Q, S>(Q, S);

impl<Q: FnMut(Request, Response) -> Action, S: FnMut(Request, Response) -> Action> Plugin for Phases<Q, S> {
    fn configure(&mut self, _config: &[u8]) -> Result<Features, Error> {
        Ok(Features::BOTH)
    }
    fn on_request(&mut self, req: Request, resp: Response) -> Action {
        (self.0)(req, resp)
    }
    fn on_response(&mut self, req: Request, resp: Response) -> Action {
        (self.1)(req, resp)
    }
}

fn cont(_: Request, _: Response) -> Action {
    Action::Continue
}

#[test]
fn request_fields_headers_and_body() {
    let on_request = |req: Request, resp: Response| {
        let mut buf = [0u8; 64];
        assert_eq!(req.method(&mut buf), Ok(&b"POST"[..]));
        assert!(req.method_is(b"POST") && !req.method_is(b"GET") && !req.method_is(b"POSTX"));
        assert_eq!(req.path(&mut buf), Ok(&b"/a/b"[..]));
        assert!(req.path_is(b"/a/b") && !req.path_is(b"/a"));
        assert_eq!(req.raw_query(&mut buf), Ok(&b"x=1"[..]));
        let mut short = [0u8; 2];
        assert_eq!(req.path(&mut short), Err(Error::Short(4)));

        let h = req.header();
        assert_eq!(h.get(b"x-multi", &mut buf), Ok(&b"one"[..]));
        assert_eq!(h.get(b"X-None", &mut buf), Err(Error::NotFound));
        assert!(h.has(b"X-Multi") && !h.has(b"X-None"));
        let values: Vec<&[u8]> = h.values(b"X-Multi", &mut buf).unwrap().collect();
        assert_eq!(values, [&b"one"[..], b"two"]);
        let mut names = [0u8; 64];
        assert!(h.names(&mut names).unwrap().any(|n| n == b"X-Multi"));
        assert_eq!(h.get_vec(b"X-Multi").as_deref(), Ok(&b"one"[..]));

        assert_eq!(req.read_body(0, &mut buf[..4]), Ok(11));
        assert_eq!(&buf[..4], b"hell");
        assert_eq!(req.read_body(6, &mut buf), Ok(11));
        assert_eq!(&buf[..5], b"world");
        assert_eq!(req.body_vec().as_deref(), Ok(&b"hello world"[..]));

        h.set(b"X-Set", b"v").unwrap();
        h.add(b"X-Set", b"w").unwrap();
        h.remove(b"X-Multi").unwrap();
        assert_eq!(h.set(b"Content-Length", b"1"), Err(Error::Invalid));
        assert_eq!(h.set(b"X-Bad", b"a\r\nb"), Err(Error::Invalid));
        req.set_path(b"/rewritten").unwrap();
        assert_eq!(req.set_path(b"no-slash"), Err(Error::Invalid));
        req.set_body(b"new body").unwrap();
        req.set_value(b"k", b"v").unwrap();
        req.forward(b"X-Ident", b"alice").unwrap();
        assert_eq!(req.value(b"k", &mut buf), Ok(&b"v"[..]));
        assert_eq!(req.value(b"none", &mut buf), Err(Error::NotFound));
        resp.header().set(b"X-Left", b"1").unwrap();
        Action::Continue
    };
    let on_response = |req: Request, resp: Response| {
        let mut buf = [0u8; 64];
        assert_eq!(resp.status(), 202);
        assert_eq!(resp.read_body(0, &mut buf), Ok(6));
        assert_eq!(req.value_vec(b"k").as_deref(), Ok(&b"v"[..]));
        assert_eq!(req.header().set(b"X-Late", b"1"), Err(Error::Phase));
        resp.set_status(203).unwrap();
        resp.set_body(b"changed").unwrap();
        Action::Continue
    };
    let mut host = Host::new(Phases(on_request, on_response), b"");
    host.set_origin(|req| {
        assert_eq!(req.path, "/rewritten");
        assert_eq!(req.body, b"new body");
        assert_eq!(req.headers.values("X-Set"), ["v", "w"]);
        assert_eq!(req.headers.get("X-Multi"), None);
        HttpResponse::new(202).body(b"origin")
    });
    let out = host.request(
        HttpRequest::new("POST", "/a/b?x=1").header("X-Multi", "one").header("X-Multi", "two").body(b"hello world"),
    );
    assert_eq!(out.request_error, None);
    assert_eq!(out.response_error, None);
    assert_eq!((out.response.status, out.response.body_str().as_str()), (203, "changed"));
    assert_eq!(out.response.headers.get("X-Left").as_deref(), Some("1"));
    assert_eq!(out.value("X-Ident"), Some(&b"alice"[..]));
}

#[test]
fn answers() {
    let mut host = Host::new(Phases(|_: Request, resp: Response| resp.answer_text(418, b"short and stout"), cont), b"");
    let out = host.request(HttpRequest::get("/"));
    assert!(out.answered);
    assert_eq!((out.response.status, out.response.body_str().as_str()), (418, "short and stout\n"));
    assert_eq!(out.response.headers.get("Content-Type").as_deref(), Some("text/plain; charset=utf-8"));

    // Past the stack buffer, the newline still comes (alloc).
    let long = [b'x'; 3000];
    let mut host = Host::new(Phases(move |_: Request, resp: Response| resp.answer_text(200, &long), cont), b"");
    assert_eq!(host.request(HttpRequest::get("/")).response.body.len(), 3001);

    let mut host = Host::new(Phases(|_: Request, resp: Response| resp.answer(99, b""), cont), b"");
    let out = host.request(HttpRequest::get("/"));
    assert!(out.request_error.unwrap_or_default().contains("invalid"));

    let mut host = Host::new(
        Phases(|_: Request, _: Response| {
            set_error(b"built at run time");
            Action::Fail
        }, cont),
        b"",
    );
    assert!(host.request(HttpRequest::get("/")).request_error.unwrap_or_default().contains("built at run time"));
}

#[test]
fn cache_and_ranges() {
    let on_request = |_: Request, resp: Response| {
        let mut buf = [0u8; 64];
        assert_eq!(cache_lookup(b"k", &mut buf), Err(Error::NotFound));
        resp.set_status(200).unwrap();
        resp.set_body(b"0123456789").unwrap();
        let mut tags = [0u8; 16];
        let n = write_list(&mut tags, &[b"t1", b"t2"]).unwrap();
        cache_store(b"k", b"m1", 60_000, 0, &tags[..n]).unwrap();
        assert_eq!(cache_store(b"", b"", 1, 0, b""), Err(Error::Invalid));
        let (info, meta) = cache_lookup(b"k", &mut buf).unwrap();
        assert_eq!(meta, b"m1");
        assert!(info.ttl_ms > 0 && info.ttl_ms <= 60_000 && info.age_ms >= 0);
        assert_eq!(cache_lookup(b"k", &mut buf[..17]), Err(Error::Short(18)));
        assert_eq!(cache_serve(b"k"), Ok(200));
        assert_eq!(resp.apply_range(b"bytes=-3"), Ok(206));
        assert_eq!(cache_purge(Purge::Tag, b"t2"), Ok(1));
        assert_eq!(cache_serve(b"k"), Err(Error::NotFound));
        Action::Answer
    };
    let out = Host::new(Phases(on_request, cont), b"").request(HttpRequest::get("/"));
    assert_eq!(out.request_error, None);
    assert_eq!((out.response.status, out.response.body_str().as_str()), (206, "789"));
}

#[test]
fn rate_limits() {
    let on_request = |_: Request, _: Response| {
        let take = || ratelimit_take(b"policy:u", 10, 1000, 2, 1).unwrap();
        let (a, b, c) = (take(), take(), take());
        assert!(a.allowed && b.allowed && !c.allowed);
        assert_eq!((a.remaining, b.remaining, c.remaining), (1, 0, 0));
        assert!(c.retry_after_ms > 0 && a.retry_after_ms == 0);
        assert_eq!(ratelimit_take(b"k", 0, 1000, 1, 1), Err(Error::Invalid));
        assert_eq!(ratelimit_take(b"k", u32::MAX, 1000, 1, 1), Err(Error::Invalid));
        Action::Continue
    };
    let mut host = Host::new(Phases(on_request, cont), b"");
    host.set_time(1_700_000_000_000_000_000);
    assert_eq!(host.request(HttpRequest::get("/")).request_error, None);
}

/// A plugin that registers a key and a metric in configure.
struct Crypto {
    key: Option<Key>,
    metric: Option<Metric>,
}

impl Plugin for Crypto {
    fn configure(&mut self, config: &[u8]) -> Result<Features, Error> {
        assert_eq!(Key::register(Alg::HS256, KeyFormat::Raw, b"short"), Err(Error::Invalid));
        self.key = Some(Key::register(Alg::HS256, KeyFormat::Raw, config)?);
        self.metric = Some(Metric::counter(b"api_tests_total")?);
        assert_eq!(Metric::counter(b"Bad-Name"), Err(Error::Invalid));
        Ok(Features::REQUEST)
    }

    fn on_request(&mut self, _: Request, _: Response) -> Action {
        let mut buf = [0u8; 64];
        let d = digest(Digest::Sha256, b"abc", &mut buf).unwrap();
        assert_eq!(&d[..4], &[0xba, 0x78, 0x16, 0xbf]);
        let mut mac = [0u8; 32];
        mac.copy_from_slice(digest(Digest::Sha256, b"not a mac", &mut buf).unwrap());
        let key = self.key.unwrap();
        assert_eq!(key.verify(b"msg", &mac), Ok(false));
        assert_eq!(Key(99).verify(b"msg", &mac), Err(Error::NotFound));
        let m = self.metric.unwrap();
        m.record(2.0).unwrap();
        assert_eq!(m.record(-1.0), Err(Error::Invalid));
        info(b"hello", &[b"user", b"alice"]).unwrap();
        assert_eq!(warn(b"odd", &[b"key"]), Err(Error::Invalid));
        assert!(now_nanos() > 0);
        let mut r = [0u8; 32];
        random_fill(&mut r);
        assert_ne!(r, [0u8; 32]);
        Action::Continue
    }
}

#[test]
fn keys_digests_logs_metrics() {
    let mut host = Host::new(Crypto { key: None, metric: None }, &[7u8; 32]);
    assert_eq!(host.request(HttpRequest::get("/")).request_error, None);
    assert_eq!(host.metric("api_tests_total").map(|m| m.value), Some(2.0));
    let log = host.logs().iter().find(|l| l.message == "hello").expect("no log record");
    assert_eq!((log.level, log.attr("user")), (abi::LEVEL_INFO, Some("alice")));
    let refused = Host::try_new(Crypto { key: None, metric: None }, b"too short");
    assert!(refused.err().unwrap_or_default().contains("invalid"));
}

/// A plugin whose configure fails with a message it set itself.
struct Refuses;

impl Plugin for Refuses {
    fn configure(&mut self, config: &[u8]) -> Result<Features, Error> {
        let mut msg = String::from("refused: ");
        msg.push_str(core::str::from_utf8(config).unwrap());
        set_error(msg.as_bytes());
        Err(Error::Reported)
    }
}

#[test]
fn configure_errors() {
    let err = Host::try_new(Refuses, b"cfg").err().unwrap_or_default();
    assert!(err.contains("refused: cfg"), "{}", err);
    assert_eq!(Error::from_errno(-5), Error::Unavailable);
    assert_eq!(Error::from_errno(-77), Error::Unknown(-77));
    assert_eq!(std::format!("{}", Error::Short(9)), "wedge: buffer too small: 9 bytes needed");
}
