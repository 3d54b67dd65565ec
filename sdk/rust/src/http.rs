//! The request and response views: every method is a host call, and
//! readers fill the caller's buffer.

use core::mem::MaybeUninit;

use crate::error::{check, filled};
use crate::{abi, hostcall, Action, Error, Items};

/// The client's request. Its methods are host calls: the request stays in
/// the host. Writes are allowed in the request phase only.
#[derive(Clone, Copy, Debug)]
pub struct Request(());

/// In the request phase, the answer the plugin may build (header fields
/// set on it reach the client's response when the plugin continues:
/// wasm/abi/README.md section 4); in the response phase, the response on
/// its way to the client.
#[derive(Clone, Copy, Debug)]
pub struct Response(());

fn field<'a>(f: i32, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    let r = hostcall::field_get(f, buf);
    filled(r, buf).map(|b| &*b)
}

/// Whether a field is exactly `want`, read into a stack buffer of its size.
fn field_is(f: i32, want: &[u8]) -> bool {
    let mut buf = [0u8; 64];
    if want.len() > buf.len() {
        return false;
    }
    hostcall::field_get(f, &mut buf[..want.len()]) == want.len() as i32 && &buf[..want.len()] == want
}

impl Request {
    /// The request view. The host decides what it addresses (the current
    /// call's request); plugins get theirs as an argument.
    pub const fn new() -> Request {
        Request(())
    }

    /// The method, `GET`.
    pub fn method<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_METHOD, buf)
    }

    /// Whether the method is `m` (case-sensitive, as methods are), without
    /// a buffer.
    pub fn method_is(&self, m: &[u8]) -> bool {
        field_is(abi::FIELD_METHOD, m)
    }

    /// `http` or `https`.
    pub fn scheme<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_SCHEME, buf)
    }

    /// The host the client asked for, with any port.
    pub fn host<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_HOST, buf)
    }

    /// The path as received, percent-encoded, without the query.
    pub fn path<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_PATH, buf)
    }

    /// Whether the path is exactly `p` (up to 64 bytes), without a buffer.
    pub fn path_is(&self, p: &[u8]) -> bool {
        field_is(abi::FIELD_PATH, p)
    }

    /// The query without `?`; see [`crate::query`] to read parameters.
    pub fn raw_query<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_RAW_QUERY, buf)
    }

    /// The protocol, `HTTP/1.1`.
    pub fn proto<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_PROTO, buf)
    }

    /// The client's address, `203.0.113.7:51234`.
    pub fn client_addr<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_CLIENT_ADDR, buf)
    }

    /// The host-assigned request id.
    pub fn id<'a>(&self, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        field(abi::FIELD_REQUEST_ID, buf)
    }

    /// Rewrites the method sent to the origin.
    pub fn set_method(&self, v: &[u8]) -> Result<(), Error> {
        check(hostcall::field_set(abi::FIELD_METHOD, v)).map(drop)
    }

    /// Rewrites the host sent to the origin.
    pub fn set_host(&self, v: &[u8]) -> Result<(), Error> {
        check(hostcall::field_set(abi::FIELD_HOST, v)).map(drop)
    }

    /// Rewrites the path sent to the origin; it starts with `/`.
    pub fn set_path(&self, v: &[u8]) -> Result<(), Error> {
        check(hostcall::field_set(abi::FIELD_PATH, v)).map(drop)
    }

    /// Rewrites the query sent to the origin.
    pub fn set_raw_query(&self, v: &[u8]) -> Result<(), Error> {
        check(hostcall::field_set(abi::FIELD_RAW_QUERY, v)).map(drop)
    }

    /// The request's header.
    pub const fn header(&self) -> Header {
        Header { msg: abi::MSG_REQUEST }
    }

    /// Reads the body from byte `offset` into buf; returns the body's full
    /// length (a caller reads a large body in chunks by advancing offset).
    /// Of a body the edge streams, the host holds only the first
    /// `abi::STREAMED_PREFIX` bytes: a read past them is
    /// `Error::TooLarge`, and the length is `abi::BODY_LENGTH_UNKNOWN` when
    /// the client sent none.
    pub fn read_body(&self, offset: usize, buf: &mut [u8]) -> Result<usize, Error> {
        read_body(abi::MSG_REQUEST, offset, buf)
    }

    /// The whole body; `Error::TooLarge` for a streamed one, which the
    /// host does not hold whole.
    #[cfg(feature = "alloc")]
    pub fn body_vec(&self) -> Result<alloc::vec::Vec<u8>, Error> {
        body_vec(abi::MSG_REQUEST)
    }

    /// Replaces the body sent to the origin.
    pub fn set_body(&self, b: &[u8]) -> Result<(), Error> {
        check(hostcall::body_set(abi::MSG_REQUEST, b)).map(drop)
    }

    /// The request-scoped value under key, set by this or an earlier
    /// plugin.
    pub fn value<'a>(&self, key: &[u8], buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        let r = hostcall::value_get(key, buf);
        filled(r, buf).map(|b| &*b)
    }

    /// The request-scoped value under key, as a vector.
    #[cfg(feature = "alloc")]
    pub fn value_vec(&self, key: &[u8]) -> Result<alloc::vec::Vec<u8>, Error> {
        crate::error::fetch_vec(|b| hostcall::value_get(key, b))
    }

    /// Stores a request-scoped value for later phases and plugins.
    pub fn set_value(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        check(hostcall::value_set(key, value, 0)).map(drop)
    }

    /// Stores a request-scoped value that is also sent to the origin (the
    /// identity an auth plugin verified, say); key must be a header token.
    pub fn forward(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        check(hostcall::value_set(key, value, abi::VALUE_FORWARD)).map(drop)
    }
}

impl Response {
    /// The response view; plugins get theirs as an argument.
    pub const fn new() -> Response {
        Response(())
    }

    /// The status; in the request phase 0 until set.
    pub fn status(&self) -> u16 {
        hostcall::status_get().max(0) as u16
    }

    /// Sets the status (200-599).
    pub fn set_status(&self, code: u16) -> Result<(), Error> {
        check(hostcall::status_set(code as i32)).map(drop)
    }

    /// The response's header.
    pub const fn header(&self) -> Header {
        Header { msg: abi::MSG_RESPONSE }
    }

    /// Reads the body from byte `offset` into buf; returns its full length.
    /// Of a body the origin streams the host holds none: a read of any of
    /// it is `Error::TooLarge`, and the length is
    /// `abi::BODY_LENGTH_UNKNOWN` when the origin gave none.
    pub fn read_body(&self, offset: usize, buf: &mut [u8]) -> Result<usize, Error> {
        read_body(abi::MSG_RESPONSE, offset, buf)
    }

    /// The whole body; `Error::TooLarge` for a streamed one, which the
    /// host does not hold whole.
    #[cfg(feature = "alloc")]
    pub fn body_vec(&self) -> Result<alloc::vec::Vec<u8>, Error> {
        body_vec(abi::MSG_RESPONSE)
    }

    /// Replaces the body.
    pub fn set_body(&self, b: &[u8]) -> Result<(), Error> {
        check(hostcall::body_set(abi::MSG_RESPONSE, b)).map(drop)
    }

    /// Applies a `Range` field value (RFC 9110 section 14) to the response,
    /// in the host: one satisfiable byte range of a 200 makes it a 206, a
    /// range past the end a 416, anything else leaves it. Returns the
    /// status afterwards. Whether a range applies (the method, `If-Range`)
    /// is the caller's decision.
    pub fn apply_range(&self, value: &[u8]) -> Result<u16, Error> {
        check(hostcall::range_apply(value)).map(|s| s as u16)
    }

    /// Sets status and body and returns [`Action::Answer`]: the request
    /// phase ends the chain with this response.
    pub fn answer(&self, status: u16, body: &[u8]) -> Action {
        match self.set_status(status).and_then(|_| self.set_body(body)) {
            Ok(()) => Action::Answer,
            Err(e) => Action::fail(e),
        }
    }

    /// Answers with a `text/plain; charset=utf-8` body: `text` and a
    /// newline, as the Go SDK's AnswerText.
    pub fn answer_text(&self, status: u16, text: &[u8]) -> Action {
        if let Err(e) = self.header().set(b"Content-Type", b"text/plain; charset=utf-8") {
            return Action::fail(e);
        }
        if let Err(e) = self.set_status(status) {
            return Action::fail(e);
        }
        // The newline is appended in a stack buffer when it fits, so a
        // short answer costs one body_set and no allocation. The buffer is
        // left uninitialised: clearing it would cost more than the copy.
        let r = if text.len() < ANSWER_BUF {
            let mut buf = [MaybeUninit::<u8>::uninit(); ANSWER_BUF];
            let p = buf.as_mut_ptr() as *mut u8;
            // SAFETY: text.len() + 1 <= ANSWER_BUF bytes are written, then
            // exactly those are read.
            let body = unsafe {
                core::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
                p.add(text.len()).write(b'\n');
                core::slice::from_raw_parts(p, text.len() + 1)
            };
            self.set_body(body)
        } else {
            self.set_body_parts(text, b"\n")
        };
        match r {
            Ok(()) => Action::Answer,
            Err(e) => Action::fail(e),
        }
    }

    #[cfg(feature = "alloc")]
    fn set_body_parts(&self, a: &[u8], b: &[u8]) -> Result<(), Error> {
        let mut v = alloc::vec::Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        self.set_body(&v)
    }

    /// Without an allocator a long text goes without its newline.
    #[cfg(not(feature = "alloc"))]
    fn set_body_parts(&self, a: &[u8], _b: &[u8]) -> Result<(), Error> {
        self.set_body(a)
    }
}

/// The longest text answer_text answers without an allocation.
const ANSWER_BUF: usize = 1024;

/// The whole body of msg. A read at its end is `TooLarge` when the host
/// holds only a prefix of it (a streamed body): refused before a buffer of
/// its full length, which may be unknown, is made.
#[cfg(feature = "alloc")]
fn body_vec(msg: i32) -> Result<alloc::vec::Vec<u8>, Error> {
    let n = check(hostcall::body_read(msg, 0, &mut []))?;
    check(hostcall::body_read(msg, n, &mut []))?;
    crate::error::fetch_vec(|b| hostcall::body_read(msg, 0, b))
}

fn read_body(msg: i32, offset: usize, buf: &mut [u8]) -> Result<usize, Error> {
    if offset > i32::MAX as usize {
        return Err(Error::Invalid);
    }
    check(hostcall::body_read(msg, offset as i32, buf)).map(|n| n as usize)
}

/// The header of a request or response. Names compare
/// case-insensitively. `set`, `add` and `remove` refuse the fields the host
/// owns (framing, hop-by-hop, `Host`) and values with control characters.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    msg: i32,
}

impl Header {
    /// The first value of name, or [`Error::NotFound`].
    pub fn get<'a>(&self, name: &[u8], buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
        let r = hostcall::header_get(self.msg, name, buf);
        filled(r, buf).map(|b| &*b)
    }

    /// The first value of name, as a vector.
    #[cfg(feature = "alloc")]
    pub fn get_vec(&self, name: &[u8]) -> Result<alloc::vec::Vec<u8>, Error> {
        crate::error::fetch_vec(|b| hostcall::header_get(self.msg, name, b))
    }

    /// Whether name is present.
    pub fn has(&self, name: &[u8]) -> bool {
        hostcall::header_get(self.msg, name, &mut []) >= 0
    }

    /// Every value of name, in order (none if absent).
    pub fn values<'a>(&self, name: &[u8], buf: &'a mut [u8]) -> Result<Items<'a>, Error> {
        let r = hostcall::header_values(self.msg, name, buf);
        filled(r, buf).map(|b| Items::new(b))
    }

    /// The header names, in order of first appearance, each once.
    pub fn names<'a>(&self, buf: &'a mut [u8]) -> Result<Items<'a>, Error> {
        let r = hostcall::header_names(self.msg, buf);
        filled(r, buf).map(|b| Items::new(b))
    }

    /// Replaces every value of name with value.
    pub fn set(&self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        check(hostcall::header_set(self.msg, name, value)).map(drop)
    }

    /// Appends a value to name.
    pub fn add(&self, name: &[u8], value: &[u8]) -> Result<(), Error> {
        check(hostcall::header_add(self.msg, name, value)).map(drop)
    }

    /// Removes every value of name; an absent name is not an error.
    pub fn remove(&self, name: &[u8]) -> Result<(), Error> {
        check(hostcall::header_remove(self.msg, name)).map(drop)
    }
}
