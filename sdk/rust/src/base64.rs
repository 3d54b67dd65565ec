//! Base64 (RFC 4648) without allocation: the standard alphabet with
//! padding, as configs carry keys, and the URL alphabet without padding, as
//! JWS segments are written. Output goes into a caller buffer.

/// Why input could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A byte outside the alphabet, bad padding, or a length no encoding has.
    Corrupt,
    /// The output buffer is too small.
    Short,
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The decoded length of n bytes of unpadded input, at most.
pub const fn decoded_len(n: usize) -> usize {
    n / 4 * 3 + n % 4 * 3 / 4
}

/// The length of the unpadded encoding of n bytes.
pub const fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + (n % 3 * 4 + 2) / 3
}

/// Decodes src (standard alphabet, padded) into out.
pub fn decode_std<'o>(src: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], Error> {
    if src.len() % 4 != 0 {
        return Err(Error::Corrupt);
    }
    let pad = src.iter().rev().take(2).take_while(|&&c| c == b'=').count();
    decode(&src[..src.len() - pad], STD, out)
}

/// Decodes src (URL alphabet, unpadded) into out.
pub fn decode_url<'o>(src: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], Error> {
    decode(src, URL, out)
}

/// Encodes src with the URL alphabet, unpadded, into out.
pub fn encode_url<'o>(src: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], Error> {
    let n = encoded_len(src.len());
    if out.len() < n {
        return Err(Error::Short);
    }
    for (i, chunk) in src.chunks(3).enumerate() {
        let v = chunk.iter().enumerate().fold(0u32, |v, (j, &c)| v | u32::from(c) << (16 - 8 * j));
        for j in 0..=chunk.len() {
            out[i * 4 + j] = URL[(v >> (18 - 6 * j) & 63) as usize];
        }
    }
    Ok(&out[..n])
}

fn value(alphabet: &[u8; 64], c: u8) -> Option<u32> {
    alphabet.iter().position(|&a| a == c).map(|v| v as u32)
}

fn decode<'o>(src: &[u8], alphabet: &[u8; 64], out: &'o mut [u8]) -> Result<&'o [u8], Error> {
    if src.len() % 4 == 1 {
        return Err(Error::Corrupt);
    }
    let n = decoded_len(src.len());
    if out.len() < n {
        return Err(Error::Short);
    }
    for (i, chunk) in src.chunks(4).enumerate() {
        let mut v = 0u32;
        for (j, &c) in chunk.iter().enumerate() {
            v |= value(alphabet, c).ok_or(Error::Corrupt)? << (18 - 6 * j);
        }
        let bytes = chunk.len() * 3 / 4;
        // Bits past the last byte must be zero: otherwise two encodings
        // would decode to the same bytes.
        if v << (8 * bytes) & 0xFF_FFFF != 0 {
            return Err(Error::Corrupt);
        }
        for j in 0..bytes {
            out[i * 3 + j] = (v >> (16 - 8 * j)) as u8;
        }
    }
    Ok(&out[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut out = [0u8; 16];
        let mut enc = [0u8; 24];
        for (plain, std, url) in [
            (&b""[..], &b""[..], &b""[..]),
            (b"f", b"Zg==", b"Zg"),
            (b"fo", b"Zm8=", b"Zm8"),
            (b"foo", b"Zm9v", b"Zm9v"),
            (b"\xfb\xff\xbf", b"+/+/", b"-_-_"),
            (b"foobar!", b"Zm9vYmFyIQ==", b"Zm9vYmFyIQ"),
        ] {
            assert_eq!(decode_std(std, &mut out), Ok(plain));
            assert_eq!(decode_url(url, &mut out), Ok(plain));
            assert_eq!(encode_url(plain, &mut enc), Ok(url));
        }
    }

    #[test]
    fn corrupt() {
        let mut out = [0u8; 16];
        for bad in [&b"Zg="[..], b"Z===", b"Zh==", b"Zm9v!A==", b"-_-_", b"Zg=a"] {
            assert_eq!(decode_std(bad, &mut out), Err(Error::Corrupt), "{:?}", bad);
        }
        assert_eq!(decode_url(b"Zm9vY", &mut out), Err(Error::Corrupt));
        assert_eq!(decode_url(b"Zm9v", &mut out[..2]), Err(Error::Short));
        assert_eq!(encode_url(b"foo", &mut out[..3]), Err(Error::Short));
    }
}
