//! hello, the SDK's worked example: the Go plugin plugins/hello written in
//! Rust, answer for answer. It answers `GET /hello?name=x` with
//! "Hello, x!" (the greeting comes from the configuration), counts the
//! greetings in a metric, keeps the name in the request value
//! `hello.name`, and adds `X-Hello` to every response.
//!
//! It is `no_std` without an allocator: state lives in fixed arrays, and
//! reads go into scratch buffers the plugin keeps, so that a request does
//! not clear kilobytes of stack. One difference from the Go plugin: a
//! query over 1 KiB, or a greeting and name over 512 bytes, is answered
//! 400 rather than read in full.
#![cfg_attr(target_arch = "wasm32", no_std)]

use wedge::{json, query, Action, Error, Features, Metric, Plugin, Request, Response};

/// The plugin: its greeting, the metric that counts greetings, and
/// scratch buffers (contents of one call only: the phases of a request
/// may run on different instances).
pub struct Hello {
    greeting: [u8; 128],
    greeting_len: usize,
    greetings: Option<Metric>,
    query: [u8; 1024],
    name: [u8; 512],
    text: [u8; 512],
}

impl Default for Hello {
    fn default() -> Hello {
        let mut h = Hello { greeting: [0; 128], greeting_len: 0, greetings: None, query: [0; 1024], name: [0; 512], text: [0; 512] };
        h.set_greeting(b"Hello");
        h
    }
}

impl Hello {
    fn set_greeting(&mut self, g: &[u8]) {
        self.greeting[..g.len()].copy_from_slice(g);
        self.greeting_len = g.len();
    }

    fn greeting(&self) -> &[u8] {
        &self.greeting[..self.greeting_len]
    }

    /// The greeting for the request's name, in self.text.
    fn greet(&mut self, req: Request) -> Result<usize, &'static [u8]> {
        let q = req.raw_query(&mut self.query).map_err(|_| &b"hello: query too long"[..])?;
        let name = match query::get(q, b"name", &mut self.name) {
            Ok(Some(n)) if !n.is_empty() => n,
            Ok(_) | Err(Error::Invalid) => &b"world"[..],
            Err(_) => return Err(b"hello: name too long"),
        };
        if let Some(m) = self.greetings {
            let _ = m.record(1.0);
        }
        let _ = req.set_value(b"hello.name", name);
        let parts: [&[u8]; 4] = [&self.greeting[..self.greeting_len], b", ", name, b"!"];
        let mut n = 0;
        for p in parts {
            let t = self.text.get_mut(n..n + p.len()).ok_or(&b"hello: name too long"[..])?;
            t.copy_from_slice(p);
            n += p.len();
        }
        Ok(n)
    }
}

impl Plugin for Hello {
    /// Reads `{"greeting": "..."}`; the greeting defaults to "Hello".
    fn configure(&mut self, config: &[u8]) -> Result<Features, Error> {
        if !config.is_empty() {
            let v = json::member(config, b"greeting").map_err(|_| Error::Msg("hello: config is not a JSON object"))?;
            if let Some(v) = v {
                let mut buf = [0u8; 128];
                match json::string(v, &mut buf) {
                    Ok(g) if !g.is_empty() => self.set_greeting(g),
                    Err(json::Error::Short) => return Err(Error::Msg("hello: greeting is over 128 bytes")),
                    _ => return Err(Error::Msg("hello: greeting must be a non-empty string")),
                }
            }
        }
        self.greetings = Some(Metric::counter(b"hello_greetings_total")?);
        Ok(Features::REQUEST | Features::RESPONSE)
    }

    /// Answers GET /hello?name=... and lets everything else through.
    fn on_request(&mut self, req: Request, resp: Response) -> Action {
        if !req.method_is(b"GET") || !req.path_is(b"/hello") {
            return Action::Continue;
        }
        match self.greet(req) {
            Ok(n) => resp.answer_text(200, &self.text[..n]),
            Err(msg) => resp.answer_text(400, msg),
        }
    }

    /// Adds X-Hello to every response, the plugin's own included.
    fn on_response(&mut self, _req: Request, resp: Response) -> Action {
        match resp.header().set(b"X-Hello", self.greeting()) {
            Ok(()) => Action::Continue,
            Err(e) => Action::fail(e),
        }
    }
}

wedge::plugin!(Hello);

// Native tests, against the SDK's in-memory host; rust_test.go runs the
// module beside the Go hello.
#[cfg(test)]
mod tests {
    use super::Hello;
    use wedge::testing::{Host, HttpRequest, HttpResponse};

    #[test]
    fn greets_and_counts() {
        let mut h = Host::new(Hello::default(), br#"{"greeting":"Hi"}"#);
        let out = h.request(HttpRequest::get("/hello?name=A%64a"));
        assert!(out.answered);
        assert_eq!(out.response.body_str(), "Hi, Ada!\n");
        assert_eq!(out.response.headers.get("X-Hello").as_deref(), Some("Hi"));
        assert_eq!(out.value("hello.name"), Some(&b"Ada"[..]));
        assert_eq!(h.metric("hello_greetings_total").map(|m| m.value), Some(1.0));
    }

    #[test]
    fn continues_elsewhere() {
        let mut h = Host::new(Hello::default(), b"");
        h.set_origin(|_req| HttpResponse::new(201).body(b"origin"));
        let out = h.request(HttpRequest::get("/other"));
        assert!(!out.answered);
        assert_eq!(out.response.status, 201);
        assert_eq!(out.response.headers.get("X-Hello").as_deref(), Some("Hello"));
    }

    #[test]
    fn long_names_are_refused() {
        let name = "x".repeat(600);
        let out = Host::new(Hello::default(), b"").request(HttpRequest::get(&format!("/hello?name={}", name)));
        assert_eq!(out.response.status, 400);
    }

    #[test]
    fn refuses_bad_config() {
        for config in ["[1]", r#"{"greeting":""}"#, r#"{"greeting":7}"#] {
            assert!(Host::try_new(Hello::default(), config.as_bytes()).is_err(), "{} accepted", config);
        }
    }
}
