//! A probe of the Rust SDK's decoders and encoder for wasm/tck's
//! rust_test.go: each request's body goes through one of them, chosen by
//! the path, and the result is the answer's body, which the Go test
//! compares with what its own packages make of the same bytes
//! (sdk/jsonscan, encoding/base64, abi.TokenPolicy.Append).
//!
//!   /json       the body walked with wedge::json, rendered as render says
//!   /base64     decode_std of the body: "ok:" and the bytes, or "corrupt"
//!   /base64url  decode_url of the body, likewise
//!   /encodeurl  encode_url of the body
//!   /token      a policy described in JSON (below) encoded by wedge::token

use wedge::token::{TokenForward, TokenKey, TokenPolicy};
use wedge::{abi, base64, hostcall, json};

#[no_mangle]
pub extern "C" fn wedge_abi_v1() {}

#[no_mangle]
pub extern "C" fn wedge_configure() -> i32 {
    abi::FEATURE_REQUEST
}

#[no_mangle]
pub extern "C" fn wedge_on_request() -> i32 {
    let mut path = [0u8; 64];
    let n = hostcall::field_get(abi::FIELD_PATH, &mut path).clamp(0, 64) as usize;
    let body = read(|buf| hostcall::body_read(abi::MSG_REQUEST, 0, buf));
    let out = match &path[..n] {
        b"/json" => render_json(&body),
        b"/base64" => decoded(base64::decode_std(&body, &mut vec![0; base64::decoded_len(body.len())])),
        b"/base64url" => decoded(base64::decode_url(&body, &mut vec![0; base64::decoded_len(body.len())])),
        b"/encodeurl" => base64::encode_url(&body, &mut vec![0; base64::encoded_len(body.len())]).map(<[u8]>::to_vec).unwrap_or_default(),
        b"/token" => token(&body).unwrap_or_else(|e| format!("bad description: {}", e).into_bytes()),
        _ => b"unknown probe".to_vec(),
    };
    hostcall::status_set(200);
    hostcall::body_set(abi::MSG_RESPONSE, &out);
    abi::ACTION_ANSWER
}

#[no_mangle]
pub extern "C" fn wedge_on_response() -> i32 {
    abi::ACTION_CONTINUE
}

/// Calls a "buffer + limit" function with a buffer of the size its probe
/// gives.
fn read(call: impl Fn(&mut [u8]) -> i32) -> Vec<u8> {
    let mut buf = vec![0; call(&mut []).max(0) as usize];
    call(&mut buf);
    buf
}

fn decoded(r: Result<&[u8], base64::Error>) -> Vec<u8> {
    match r {
        Ok(b) => [&b"ok:"[..], b].concat(),
        Err(_) => b"corrupt".to_vec(),
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let is_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    let start = b.iter().position(|c| !is_space(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_space(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

/// "invalid" for what json::valid refuses; otherwise render's text.
fn render_json(body: &[u8]) -> Vec<u8> {
    if !json::valid(body) {
        return b"invalid".to_vec();
    }
    let mut out = Vec::new();
    render(trim(body), &mut out);
    out
}

/// Writes a value as the Go test's render does: an object as {key=value,}
/// with each key a string, an array as [value,], a string as s<len>:<text>,
/// an integer as i<n>, another number as n<raw>, and T, F or N.
fn render(v: &[u8], out: &mut Vec<u8>) {
    match v.first() {
        Some(b'{') | Some(b'[') => {
            let object = v[0] == b'{';
            out.push(v[0]);
            let mut it = if object { json::Iter::object(v) } else { json::Iter::array(v) };
            for (k, v) in &mut it {
                if object {
                    string(&[b"\"", k, b"\""].concat(), out);
                    out.push(b'=');
                }
                render(v, out);
                out.push(b',');
            }
            if let Some(e) = it.err() {
                out.extend_from_slice(format!("error {:?}", e).as_bytes());
            }
            out.push(if object { b'}' } else { b']' });
        }
        Some(b'"') => string(v, out),
        Some(b't' | b'f') => out.push(if json::boolean(v) == Ok(true) { b'T' } else { b'F' }),
        Some(b'n') => out.push(b'N'),
        _ => match json::int(v) {
            Ok(n) => out.extend_from_slice(format!("i{}", n).as_bytes()),
            Err(_) => out.extend_from_slice(&[b"n", v].concat()),
        },
    }
}

fn string(raw: &[u8], out: &mut Vec<u8>) {
    let mut buf = vec![0; raw.len()];
    match json::string(raw, &mut buf) {
        Ok(s) => {
            out.extend_from_slice(format!("s{}:", s.len()).as_bytes());
            out.extend_from_slice(s);
        }
        Err(e) => out.extend_from_slice(format!("error {:?}", e).as_bytes()),
    }
}

/// The base64 text of a JSON string.
fn bytes(raw: &[u8]) -> Result<Vec<u8>, Bad> {
    let mut text = vec![0; raw.len()];
    let text = json::string(raw, &mut text).map_err(bad)?;
    let mut out = vec![0; base64::decoded_len(text.len())];
    Ok(base64::decode_std(text, &mut out).map_err(bad)?.to_vec())
}

/// Why a policy description could not be read.
type Bad = String;

fn bad(e: impl core::fmt::Debug) -> Bad {
    format!("{:?}", e)
}

fn list(raw: &[u8]) -> Result<Vec<Vec<u8>>, Bad> {
    json::Iter::array(raw).map(|(_, v)| bytes(v)).collect()
}

/// One forward of a policy description, owned.
#[derive(Default)]
struct Forward {
    name: Vec<u8>,
    claims: Vec<Vec<u8>>,
    value: Vec<u8>,
}

/// Encodes the policy described by desc: {"keys": [{"key": n, "kid": b}],
/// "issuer": b, "audiences": [b], "leeway": n, "require_expiry": bool,
/// "claims": [b], "forwards": [{"name": b, "claims": [b], "value": b}]},
/// every b a base64 string.
fn token(desc: &[u8]) -> Result<Vec<u8>, Bad> {
    let (mut keys, mut issuer, mut audiences, mut claims) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut leeway, mut require_expiry) = (0, false);
    let mut forwards: Vec<Forward> = Vec::new();
    for (k, v) in json::Iter::object(desc) {
        match k {
            b"keys" => {
                for (_, key) in json::Iter::array(v) {
                    let (mut handle, mut kid) = (0, Vec::new());
                    for (k, v) in json::Iter::object(key) {
                        match k {
                            b"key" => handle = json::int(v).map_err(bad)? as i32,
                            b"kid" => kid = bytes(v)?,
                            _ => {}
                        }
                    }
                    keys.push((handle, kid));
                }
            }
            b"issuer" => issuer = bytes(v)?,
            b"audiences" => audiences = list(v)?,
            b"leeway" => leeway = json::int(v).map_err(bad)? as u32,
            b"require_expiry" => require_expiry = json::boolean(v).map_err(bad)?,
            b"claims" => claims = list(v)?,
            b"forwards" => {
                for (_, f) in json::Iter::array(v) {
                    let mut fw = Forward::default();
                    for (k, v) in json::Iter::object(f) {
                        match k {
                            b"name" => fw.name = bytes(v)?,
                            b"claims" => fw.claims = list(v)?,
                            b"value" => fw.value = bytes(v)?,
                            _ => {}
                        }
                    }
                    forwards.push(fw);
                }
            }
            _ => {}
        }
    }
    let keys: Vec<TokenKey> = keys.iter().map(|(key, kid)| TokenKey { key: *key, kid }).collect();
    fn slices(l: &[Vec<u8>]) -> Vec<&[u8]> {
        l.iter().map(Vec::as_slice).collect()
    }
    let (audiences, claims) = (slices(&audiences), slices(&claims));
    let forward_claims: Vec<Vec<&[u8]>> = forwards.iter().map(|f| slices(&f.claims)).collect();
    let forwards: Vec<TokenForward> = forwards
        .iter()
        .zip(&forward_claims)
        .map(|(f, claims)| TokenForward { name: &f.name, claims, value: &f.value })
        .collect();
    let p = TokenPolicy { keys: &keys, issuer: &issuer, audiences: &audiences, leeway, require_expiry, claims: &claims, forwards: &forwards };
    let mut buf = vec![0; p.encoded_len()];
    if p.encoded_len() > 0 && p.encode(&mut buf[1..]).is_some() {
        return Ok(b"encode wrote past its buffer".to_vec());
    }
    Ok(p.encode(&mut buf).map(<[u8]>::to_vec).unwrap_or_else(|| b"encode refused encoded_len bytes".to_vec()))
}
