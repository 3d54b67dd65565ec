//! Query strings: `a=1&b=x%20y`, read as Go's url.ParseQuery does, into
//! the caller's buffer.

use crate::Error;

/// The first value of `key` in the raw query, percent-decoded (`+` is a
/// space) into buf. Like Go's url.ParseQuery, a query with a bad escape or
/// a `;` anywhere is [`Error::Invalid`], so that a plugin and the Go one
/// read it alike; an absent key is Ok(None).
pub fn get<'a>(raw: &[u8], key: &[u8], buf: &'a mut [u8]) -> Result<Option<&'a [u8]>, Error> {
    let mut found: Option<usize> = None;
    for pair in raw.split(|&c| c == b'&') {
        if pair.contains(&b';') {
            return Err(Error::Invalid);
        }
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.iter().position(|&c| c == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        // Every key and value must decode, as ParseQuery checks them all.
        decoded_len(k)?;
        let vn = decoded_len(v)?;
        if found.is_none() && decodes_to(k, key) {
            if vn > buf.len() {
                return Err(Error::Short(vn));
            }
            unescape(v, buf)?;
            found = Some(vn);
        }
    }
    Ok(found.map(move |n| &buf[..n]))
}

/// The decoded length of s, or Invalid for a bad escape.
fn decoded_len(s: &[u8]) -> Result<usize, Error> {
    let mut n = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() {
                return Err(Error::Invalid);
            }
            hex(s[i + 1])?;
            hex(s[i + 2])?;
            i += 3;
        } else {
            i += 1;
        }
        n += 1;
    }
    Ok(n)
}

/// Whether s, which decodes, decodes to want: compared as it decodes, so
/// that no key needs a buffer.
fn decodes_to(s: &[u8], want: &[u8]) -> bool {
    let (mut i, mut o) = (0, 0);
    while i < s.len() {
        let c = match s[i] {
            b'%' => {
                i += 2;
                hex(s[i - 1]).unwrap_or(0) << 4 | hex(s[i]).unwrap_or(0)
            }
            b'+' => b' ',
            c => c,
        };
        if want.get(o) != Some(&c) {
            return false;
        }
        i += 1;
        o += 1;
    }
    o == want.len()
}

/// Decodes s into buf; returns the length, Short when buf is too small.
fn unescape(s: &[u8], buf: &mut [u8]) -> Result<usize, Error> {
    let n = decoded_len(s)?;
    if n > buf.len() {
        return Err(Error::Short(n));
    }
    let (mut i, mut o) = (0, 0);
    while i < s.len() {
        buf[o] = match s[i] {
            b'%' => {
                i += 2;
                hex(s[i - 1])? << 4 | hex(s[i])?
            }
            b'+' => b' ',
            c => c,
        };
        i += 1;
        o += 1;
    }
    Ok(n)
}

fn hex(c: u8) -> Result<u8, Error> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(Error::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: &str, key: &str) -> Result<Option<[u8; 32]>, Error> {
        let mut buf = [0u8; 32];
        let r = get(raw.as_bytes(), key.as_bytes(), &mut buf)?.map(|v| {
            let mut out = [0u8; 32];
            out[..v.len()].copy_from_slice(v);
            out
        });
        Ok(r)
    }

    fn s(raw: &str, key: &str) -> Option<&'static str> {
        match q(raw, key) {
            Ok(Some(b)) => {
                let n = b.iter().position(|&c| c == 0).unwrap_or(32);
                Some(match &b[..n] {
                    b"Ada" => "Ada",
                    b"a b" => "a b",
                    b"x" => "x",
                    b"" => "",
                    b"\xc3\xa9" => "é",
                    _ => "?",
                })
            }
            Ok(None) => None,
            Err(_) => Some("ERR"),
        }
    }

    #[test]
    fn get_like_go() {
        assert_eq!(s("name=Ada", "name"), Some("Ada"));
        assert_eq!(s("a=1&name=a+b&name=x", "name"), Some("a b"));
        assert_eq!(s("n%61me=a%20b", "name"), Some("a b"));
        assert_eq!(s("name=%C3%A9", "name"), Some("é"));
        assert_eq!(s("name", "name"), Some(""));
        assert_eq!(s("other=1", "name"), None);
        assert_eq!(s("", "name"), None);
        assert_eq!(s("name=x&bad=%zz", "name"), Some("ERR"));
        assert_eq!(s("name=x%", "name"), Some("ERR"));
        assert_eq!(s("name=x%4", "name"), Some("ERR"));
        assert_eq!(s("name=x;y=1", "name"), Some("ERR"));
        let mut small = [0u8; 2];
        assert_eq!(get(b"name=Ada", b"name", &mut small), Err(Error::Short(3)));
    }
}
