//! A small JSON scanner for plugin configs and claims, after Go's
//! sdk/jsonscan: it walks raw bytes and hands out sub-slices, with no
//! allocation. Values are raw JSON: a string value keeps its quotes and
//! escapes (decode it with [`string`]), a number is its literal text (parse
//! it with [`int`]). Every function validates what it walks and returns an
//! [`Error`], never panics, on malformed input; nesting deeper than
//! [`MAX_DEPTH`] is refused, so hostile input cannot exhaust the stack.

/// MAX_DEPTH bounds nesting.
pub const MAX_DEPTH: usize = 64;

/// Why a value could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Malformed JSON.
    Syntax,
    /// A value of another type than asked for.
    Type,
    /// The output buffer is too small for the decoded text.
    Short,
}

fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t' || c == b'\n' || c == b'\r'
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    i
}

/// Iter walks the members of an object ([`Iter::object`]) or the elements
/// of an array ([`Iter::array`]), yielding (raw key, raw value); an array's
/// keys are empty. A raw key has no quotes and its escapes intact: compare
/// it with [`key_is`]. After the walk, [`Iter::err`] says whether it was
/// complete.
pub struct Iter<'a> {
    data: &'a [u8],
    i: usize,
    close: u8,
    started: bool,
    done: bool,
    err: Option<Error>,
}

impl<'a> Iter<'a> {
    /// Walks the object data.
    pub fn object(data: &'a [u8]) -> Self {
        Self::start(data, b'{', b'}')
    }

    /// Walks the array data.
    pub fn array(data: &'a [u8]) -> Self {
        Self::start(data, b'[', b']')
    }

    fn start(data: &'a [u8], open: u8, close: u8) -> Self {
        let i = skip_space(data, 0);
        let mut it = Iter { data, i: i + 1, close, started: false, done: false, err: None };
        if i >= data.len() || data[i] != open {
            it.err = Some(Error::Type);
        }
        it
    }

    /// The first error met: None after a complete walk.
    pub fn err(&self) -> Option<Error> {
        self.err
    }

    fn fail(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        if self.err.is_none() {
            self.err = Some(Error::Syntax);
        }
        None
    }

    fn advance(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let b = self.data;
        let mut i = skip_space(b, self.i);
        if i >= b.len() {
            return self.fail();
        }
        if b[i] == self.close {
            self.done = true;
            if skip_space(b, i + 1) != b.len() {
                return self.fail();
            }
            return None;
        }
        if self.started {
            if b[i] != b',' {
                return self.fail();
            }
            i = skip_space(b, i + 1);
        }
        self.started = true;
        let mut key: &'a [u8] = &[];
        if self.close == b'}' {
            if i >= b.len() || b[i] != b'"' {
                return self.fail();
            }
            let end = match skip_string(b, i) {
                Ok(end) => end,
                Err(_) => return self.fail(),
            };
            key = &b[i + 1..end - 1];
            i = skip_space(b, end);
            if i >= b.len() || b[i] != b':' {
                return self.fail();
            }
            i = skip_space(b, i + 1);
        }
        let end = match skip_value(b, i, 1) {
            Ok(end) => end,
            Err(_) => return self.fail(),
        };
        self.i = end;
        Some((key, &b[i..end]))
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.err.is_some() || self.done {
            return None;
        }
        self.advance()
    }
}

/// Returns the raw value of the first member of object data whose key is
/// key, None if it has none.
pub fn member<'a>(data: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, Error> {
    let mut it = Iter::object(data);
    for (k, v) in &mut it {
        if key_is(k, key) {
            return Ok(Some(v));
        }
    }
    match it.err() {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Reports whether the raw key k (as [`Iter`] yields it) equals key once
/// unescaped.
pub fn key_is(k: &[u8], key: &[u8]) -> bool {
    if !k.contains(&b'\\') {
        return k == key;
    }
    let mut at = 0;
    let ok = unquote(k, |chunk| {
        let fits = key.len() - at >= chunk.len() && &key[at..at + chunk.len()] == chunk;
        at += chunk.len();
        fits
    });
    ok == Ok(true) && at == key.len()
}

/// Reports whether data is one well-formed JSON value.
pub fn valid(data: &[u8]) -> bool {
    match skip_value(data, skip_space(data, 0), 0) {
        Ok(end) => skip_space(data, end) == data.len(),
        Err(_) => false,
    }
}

/// Decodes the raw string value raw into out and returns the text. The
/// text is never longer than raw, so an out of raw.len() bytes always
/// suffices; a shorter one that cannot hold it is [`Error::Short`].
pub fn string<'o>(raw: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], Error> {
    if raw.len() < 2 || raw[0] != b'"' || raw[raw.len() - 1] != b'"' {
        return Err(Error::Type);
    }
    if skip_string(raw, 0)? != raw.len() {
        return Err(Error::Syntax);
    }
    let mut n = 0;
    let fits = unquote(&raw[1..raw.len() - 1], |chunk| {
        if out.len() - n < chunk.len() {
            return false;
        }
        out[n..n + chunk.len()].copy_from_slice(chunk);
        n += chunk.len();
        true
    })?;
    if !fits {
        return Err(Error::Short);
    }
    Ok(&out[..n])
}

/// Parses a raw number that is an integer (no fraction or exponent) within
/// i64.
pub fn int(raw: &[u8]) -> Result<i64, Error> {
    match skip_number(raw, 0) {
        Ok(end) if end == raw.len() => {}
        _ => return Err(Error::Type),
    }
    let neg = raw[0] == b'-';
    let digits = if neg { &raw[1..] } else { raw };
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() || v > (1u64 << 63) / 10 {
            return Err(Error::Type); // a fraction, an exponent, or out of range
        }
        v = v * 10 + u64::from(c - b'0');
    }
    if v > 1u64 << 63 || (!neg && v == 1u64 << 63) {
        return Err(Error::Type);
    }
    Ok(if neg { (v as i64).wrapping_neg() } else { v as i64 })
}

/// Parses a raw true or false.
pub fn boolean(raw: &[u8]) -> Result<bool, Error> {
    match raw {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(Error::Type),
    }
}

/// Decodes the escapes of a string body (between the quotes), handing the
/// text to emit in chunks; emit returns false to stop, and unquote then
/// returns Ok(false). Lone surrogates become U+FFFD, as in Go's
/// encoding/json.
fn unquote(s: &[u8], mut emit: impl FnMut(&[u8]) -> bool) -> Result<bool, Error> {
    let mut i = 0;
    while i < s.len() {
        let start = i;
        while i < s.len() && s[i] != b'\\' {
            i += 1;
        }
        if i > start && !emit(&s[start..i]) {
            return Ok(false);
        }
        if i >= s.len() {
            break;
        }
        if i + 1 >= s.len() {
            return Err(Error::Syntax);
        }
        let one = match s[i + 1] {
            c @ (b'"' | b'\\' | b'/') => c,
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let (c, n) = read_u(&s[i..]).ok_or(Error::Syntax)?;
                let mut utf8 = [0u8; 4];
                if !emit(c.encode_utf8(&mut utf8).as_bytes()) {
                    return Ok(false);
                }
                i += n;
                continue;
            }
            _ => return Err(Error::Syntax),
        };
        if !emit(&[one]) {
            return Ok(false);
        }
        i += 2;
    }
    Ok(true)
}

/// Decodes \uXXXX at s[0], joining a surrogate pair; returns the character
/// and the bytes consumed.
fn read_u(s: &[u8]) -> Option<(char, usize)> {
    if s.len() < 6 {
        return None;
    }
    let r = hex4(&s[2..6])?;
    if !(0xD800..0xE000).contains(&r) {
        return Some((char::from_u32(r)?, 6));
    }
    if r < 0xDC00 && s.len() >= 12 && s[6] == b'\\' && s[7] == b'u' {
        if let Some(lo) = hex4(&s[8..12]) {
            if (0xDC00..0xE000).contains(&lo) {
                let c = 0x10000 + ((r - 0xD800) << 10) + (lo - 0xDC00);
                return Some((char::from_u32(c)?, 12));
            }
        }
    }
    Some((char::REPLACEMENT_CHARACTER, 6))
}

fn hex4(b: &[u8]) -> Option<u32> {
    let mut r = 0;
    for &c in &b[..4] {
        r = r << 4 | (c as char).to_digit(16)?;
    }
    Some(r)
}

/// Returns the end of the value starting at b[i]; depth is the number of
/// containers around it.
fn skip_value(b: &[u8], mut i: usize, depth: usize) -> Result<usize, Error> {
    if i >= b.len() {
        return Err(Error::Syntax);
    }
    let c = b[i];
    if depth >= MAX_DEPTH && (c == b'{' || c == b'[') {
        return Err(Error::Syntax); // one more container would nest past MAX_DEPTH
    }
    match c {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let close = if c == b'{' { b'}' } else { b']' };
            i = skip_space(b, i + 1);
            if i < b.len() && b[i] == close {
                return Ok(i + 1);
            }
            loop {
                if close == b'}' {
                    if i >= b.len() || b[i] != b'"' {
                        return Err(Error::Syntax);
                    }
                    i = skip_space(b, skip_string(b, i)?);
                    if i >= b.len() || b[i] != b':' {
                        return Err(Error::Syntax);
                    }
                    i = skip_space(b, i + 1);
                }
                i = skip_space(b, skip_value(b, i, depth + 1)?);
                match b.get(i) {
                    Some(&c) if c == close => return Ok(i + 1),
                    Some(b',') => i = skip_space(b, i + 1),
                    _ => return Err(Error::Syntax),
                }
            }
        }
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => skip_number(b, i),
        _ => Err(Error::Syntax),
    }
}

fn literal(b: &[u8], i: usize, lit: &[u8]) -> Result<usize, Error> {
    if b.len() - i < lit.len() || &b[i..i + lit.len()] != lit {
        return Err(Error::Syntax);
    }
    Ok(i + lit.len())
}

/// Follows the JSON number grammar (RFC 8259 section 6).
fn skip_number(b: &[u8], mut i: usize) -> Result<usize, Error> {
    fn digits(b: &[u8], i: &mut usize) -> usize {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    }
    if i < b.len() && b[i] == b'-' {
        i += 1;
    }
    if i < b.len() && b[i] == b'0' {
        i += 1;
    } else if digits(b, &mut i) == 0 {
        return Err(Error::Syntax);
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(b, &mut i) == 0 {
            return Err(Error::Syntax);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(b, &mut i) == 0 {
            return Err(Error::Syntax);
        }
    }
    Ok(i)
}

/// Returns the index after the closing quote of the string that starts at
/// b[i], validating escapes and refusing raw control characters.
fn skip_string(b: &[u8], mut i: usize) -> Result<usize, Error> {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Ok(i + 1),
            b'\\' => match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') if i + 6 <= b.len() && hex4(&b[i + 2..i + 6]).is_some() => i += 6,
                _ => return Err(Error::Syntax),
            },
            c if c < 0x20 => return Err(Error::Syntax),
            _ => i += 1,
        }
    }
    Err(Error::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_values() {
        let cfg = br#" {"a": 1, "k\u0065ys": [{"x": "y"}, 2, "s\"\u00e9\ud83d\ude00"], "n": -42 } "#;
        assert_eq!(member(cfg, b"a"), Ok(Some(&b"1"[..])));
        assert_eq!(member(cfg, b"keys").unwrap().map(valid), Some(true));
        assert_eq!(member(cfg, b"missing"), Ok(None));
        assert_eq!(int(member(cfg, b"n").unwrap().unwrap()), Ok(-42));
        let arr = member(cfg, b"keys").unwrap().unwrap();
        let mut it = Iter::array(arr);
        let vals: [&[u8]; 3] = [it.next().unwrap().1, it.next().unwrap().1, it.next().unwrap().1];
        assert!(it.next().is_none() && it.err().is_none());
        assert_eq!(vals[1], b"2");
        let mut out = [0u8; 32];
        assert_eq!(string(vals[2], &mut out), Ok("s\"é😀".as_bytes()));
        assert_eq!(string(vals[2], &mut [0u8; 3]), Err(Error::Short));
        assert_eq!(string(vals[1], &mut out), Err(Error::Type));
        assert_eq!(string(br#""\ud800x""#, &mut out), Ok("\u{fffd}x".as_bytes()));
    }

    #[test]
    fn ints() {
        assert_eq!(int(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(int(b"-9223372036854775808"), Ok(i64::MIN));
        for bad in [&b"9223372036854775808"[..], b"1.5", b"1e3", b"", b"-", b"01", b"x"] {
            assert_eq!(int(bad), Err(Error::Type), "{:?}", bad);
        }
    }

    #[test]
    fn malformed() {
        for bad in [
            &b""[..], b"{", b"{\"a\"}", b"{\"a\":}", b"{\"a\":1,}", b"[1,]", b"[1 2]", b"\"a\x01\"",
            b"\"\\x\"", b"\"\\u12\"", b"tru", b"nul", b"-", b"1.", b"1e", b"{} x", b"\"abc",
        ] {
            assert!(!valid(bad), "{:?}", bad);
        }
        let deep = [b'['; MAX_DEPTH + 1];
        assert!(!valid(&deep));
        let mut it = Iter::object(b"{\"a\":1,}");
        assert!(it.next().is_some() && it.next().is_none());
        assert_eq!(it.err(), Some(Error::Syntax));
        assert_eq!(Iter::object(b"[1]").err(), Some(Error::Type));
        assert_eq!(member(b"{\"a\":x}", b"a"), Err(Error::Syntax));
    }

    #[test]
    fn escaped_keys() {
        assert!(key_is(br"k\u0065y", b"key"));
        assert!(!key_is(br"k\u0065y", b"ke"));
        assert!(!key_is(br"k\u0065y", b"keys"));
        assert!(!key_is(br"k\q", b"kq"));
    }
}
