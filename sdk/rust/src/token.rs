//! Token policies for `token_policy`, encoded exactly as Go's
//! abi.TokenPolicy.Append (wasm/abi/token.go) encodes them, into a caller
//! buffer: a plugin builds its policy in configure without an allocator.
//!
//! ```text
//! flags u8 (bit 0: require_expiry, bit 1: forwards follow) | leeway u32 |
//! keys: count u16, then per key: handle i32, kid str |
//! issuer str | audiences: count u16, str each | claims: count u16, str each |
//! only with flag bit 1: forwards: count u16, then per forward:
//! name str, claims: count u16, str each, value str
//! ```
//!
//! where str is a u16 length and the bytes, every integer little-endian.

/// One key a policy verifies with: a `key_register` handle and the kid it
/// answers to (empty: any kid, and a token without a kid is tried against
/// it).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenKey<'a> {
    pub key: i32,
    pub kid: &'a [u8],
}

/// One request value a valid token sets, as `value_set` with
/// `VALUE_FORWARD` would: the text of the first of claims the token has, or
/// value when it has none of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenForward<'a> {
    pub name: &'a [u8],
    pub claims: &'a [&'a [u8]],
    pub value: &'a [u8],
}

/// What `token_policy` registers: how the host verifies a compact JWS and
/// which claims `token_verify` hands back (wasm/abi/README.md).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenPolicy<'a> {
    pub keys: &'a [TokenKey<'a>],
    pub issuer: &'a [u8],
    pub audiences: &'a [&'a [u8]],
    /// Seconds of clock skew the exp, nbf and iat checks absorb.
    pub leeway: u32,
    pub require_expiry: bool,
    pub claims: &'a [&'a [u8]],
    pub forwards: &'a [TokenForward<'a>],
}

const FLAG_FORWARDS: u8 = 2;

impl TokenPolicy<'_> {
    /// Encodes the policy into buf and returns the encoding, or None when
    /// buf is shorter than [`TokenPolicy::encoded_len`].
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let mut w = Writer { buf, n: 0 };
        let flags = u8::from(self.require_expiry) | if self.forwards.is_empty() { 0 } else { FLAG_FORWARDS };
        w.put(&[flags])?;
        w.put(&self.leeway.to_le_bytes())?;
        w.count(self.keys.len())?;
        for k in self.keys {
            w.put(&k.key.to_le_bytes())?;
            w.str(k.kid)?;
        }
        w.str(self.issuer)?;
        w.strs(self.audiences)?;
        w.strs(self.claims)?;
        if !self.forwards.is_empty() {
            w.count(self.forwards.len())?;
            for f in self.forwards {
                w.str(f.name)?;
                w.strs(f.claims)?;
                w.str(f.value)?;
            }
        }
        let n = w.n;
        Some(&w.buf[..n])
    }

    /// The length of the encoding: a buffer for [`TokenPolicy::encode`].
    pub fn encoded_len(&self) -> usize {
        let strs = |ss: &[&[u8]]| 2 + ss.iter().map(|s| 2 + s.len()).sum::<usize>();
        let mut n = 1 + 4 + 2 + self.keys.iter().map(|k| 4 + 2 + k.kid.len()).sum::<usize>();
        n += 2 + self.issuer.len() + strs(self.audiences) + strs(self.claims);
        if !self.forwards.is_empty() {
            n += 2 + self.forwards.iter().map(|f| 2 + f.name.len() + strs(f.claims) + 2 + f.value.len()).sum::<usize>();
        }
        n
    }
}

struct Writer<'b> {
    buf: &'b mut [u8],
    n: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) -> Option<()> {
        self.buf.get_mut(self.n..self.n + b.len())?.copy_from_slice(b);
        self.n += b.len();
        Some(())
    }

    // Counts and lengths are u16 as in Go, which truncates the same way; the
    // host refuses what does not fit its limits, all far below 64 Ki.
    fn count(&mut self, n: usize) -> Option<()> {
        self.put(&(n as u16).to_le_bytes())
    }

    fn str(&mut self, s: &[u8]) -> Option<()> {
        self.count(s.len())?;
        self.put(s)
    }

    fn strs(&mut self, ss: &[&[u8]]) -> Option<()> {
        self.count(ss.len())?;
        for s in ss {
            self.str(s)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let mut buf = [0u8; 64];
        let empty = TokenPolicy::default();
        assert_eq!(empty.encode(&mut buf), Some(&[0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..]));
        let p = TokenPolicy {
            keys: &[TokenKey { key: 3, kid: b"k" }],
            require_expiry: true,
            leeway: 0x0102,
            claims: &[b"sub"],
            forwards: &[TokenForward { name: b"id", claims: &[], value: b"v" }],
            ..TokenPolicy::default()
        };
        let want: &[u8] = b"\x03\x02\x01\x00\x00\x01\x00\x03\x00\x00\x00\x01\x00k\x00\x00\x00\x00\x01\x00\x03\x00sub\x01\x00\x02\x00id\x00\x00\x01\x00v";
        assert_eq!(p.encoded_len(), want.len());
        assert_eq!(p.encode(&mut buf), Some(want));
        assert_eq!(p.encode(&mut buf[..want.len() - 1]), None);
    }
}
