//! Errors: the host's error codes, and the SDK's own.

use crate::abi;

/// A failed call: a host error code, a buffer too small, or a plugin's
/// own message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such header, value, cache entry, key or metric.
    NotFound,
    /// A malformed argument (an unknown enum, a bad header name or value, a
    /// status out of range, unusable key material).
    Invalid,
    /// Not available in the current phase.
    Phase,
    /// Past a size or count limit of the host.
    TooLarge,
    /// The host has no such store.
    Unavailable,
    /// An error code this SDK does not know.
    Unknown(i32),
    /// The caller's buffer is too small: the result needs this many bytes.
    Short(usize),
    /// The plugin's own error, with its message.
    Msg(&'static str),
    /// The plugin set the message itself with [`crate::set_error`].
    Reported,
}

impl Error {
    /// The error of a negative host result.
    pub const fn from_errno(code: i32) -> Error {
        match code {
            abi::ERR_NOT_FOUND => Error::NotFound,
            abi::ERR_INVALID => Error::Invalid,
            abi::ERR_PHASE => Error::Phase,
            abi::ERR_TOO_LARGE => Error::TooLarge,
            abi::ERR_UNAVAILABLE => Error::Unavailable,
            _ => Error::Unknown(code),
        }
    }

    /// The message the host reports for this error.
    pub const fn message(&self) -> &'static str {
        match self {
            Error::NotFound => "wedge: not found",
            Error::Invalid => "wedge: invalid argument",
            Error::Phase => "wedge: not available in this phase",
            Error::TooLarge => "wedge: too large",
            Error::Unavailable => "wedge: unavailable",
            Error::Unknown(_) => "wedge: unknown error",
            Error::Short(_) => "wedge: buffer too small",
            Error::Msg(m) => m,
            Error::Reported => "",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Unknown(c) => write!(f, "wedge: unknown error {}", c),
            Error::Short(n) => write!(f, "wedge: buffer too small: {} bytes needed", n),
            _ => f.write_str(self.message()),
        }
    }
}

/// A host result as a `Result`: non-negative results are the value.
#[inline]
pub(crate) fn check(r: i32) -> Result<i32, Error> {
    if r < 0 {
        Err(Error::from_errno(r))
    } else {
        Ok(r)
    }
}

/// The result of a "buffer + limit" call as the filled part of `buf`, or
/// [`Error::Short`] when the full result did not fit.
#[inline]
pub(crate) fn filled(r: i32, buf: &mut [u8]) -> Result<&mut [u8], Error> {
    let n = check(r)? as usize;
    if n > buf.len() {
        return Err(Error::Short(n));
    }
    Ok(&mut buf[..n])
}

/// Runs a "buffer + limit" call into a new vector of the right size.
#[cfg(feature = "alloc")]
pub(crate) fn fetch_vec(mut call: impl FnMut(&mut [u8]) -> i32) -> Result<alloc::vec::Vec<u8>, Error> {
    let mut v = alloc::vec![0u8; 256];
    loop {
        let n = check(call(&mut v))? as usize;
        if n <= v.len() {
            v.truncate(n);
            return Ok(v);
        }
        // Too small: size it to the full length and read again.
        v.resize(n, 0);
    }
}
