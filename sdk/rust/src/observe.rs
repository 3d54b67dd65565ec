//! Logs, metrics, the clock and randomness.

use crate::error::check;
use crate::list::ListWriter;
use crate::{abi, hostcall, Error};

/// A log level: log/slog's levels, as the host uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    /// Debug detail.
    Debug = abi::LEVEL_DEBUG,
    /// Normal events.
    Info = abi::LEVEL_INFO,
    /// Something to look at.
    Warn = abi::LEVEL_WARN,
    /// A failure.
    Error = abi::LEVEL_ERROR,
}

/// Logs msg at level with attributes given as alternating keys and values
/// (`&[b"user", b"alice"]`). The host adds plugin, version and, in a
/// request, the request id. Attributes are encoded in a 2 KiB stack buffer:
/// more is [`Error::TooLarge`], an odd count [`Error::Invalid`].
pub fn log(level: Level, msg: &[u8], kv: &[&[u8]]) -> Result<(), Error> {
    if kv.len() % 2 != 0 {
        return Err(Error::Invalid);
    }
    let mut buf = [0u8; 2048];
    let mut w = ListWriter::new(&mut buf);
    for item in kv {
        w.push(item);
    }
    let n = w.finish().ok_or(Error::TooLarge)?;
    check(hostcall::log(level as i32, msg, &buf[..n])).map(drop)
}

/// Logs at debug level; see [`log`].
pub fn debug(msg: &[u8], kv: &[&[u8]]) -> Result<(), Error> {
    log(Level::Debug, msg, kv)
}

/// Logs at info level; see [`log`].
pub fn info(msg: &[u8], kv: &[&[u8]]) -> Result<(), Error> {
    log(Level::Info, msg, kv)
}

/// Logs at warn level; see [`log`].
pub fn warn(msg: &[u8], kv: &[&[u8]]) -> Result<(), Error> {
    log(Level::Warn, msg, kv)
}

/// Logs at error level; see [`log`].
pub fn error(msg: &[u8], kv: &[&[u8]]) -> Result<(), Error> {
    log(Level::Error, msg, kv)
}

/// A plugin metric, exported by the host as
/// `wedge_plugin_<name>{plugin, version}`. Define it in configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric(i32);

impl Metric {
    /// Defines a counter (names match `[a-z][a-z0-9_]{0,63}`).
    pub fn counter(name: &[u8]) -> Result<Metric, Error> {
        Metric::define(abi::METRIC_COUNTER, name)
    }

    /// Defines a gauge.
    pub fn gauge(name: &[u8]) -> Result<Metric, Error> {
        Metric::define(abi::METRIC_GAUGE, name)
    }

    /// Defines a histogram (seconds for durations).
    pub fn histogram(name: &[u8]) -> Result<Metric, Error> {
        Metric::define(abi::METRIC_HISTOGRAM, name)
    }

    fn define(kind: i32, name: &[u8]) -> Result<Metric, Error> {
        check(hostcall::metric_define(kind, name)).map(Metric)
    }

    /// Adds v to a counter, sets a gauge, or observes v in a histogram.
    pub fn record(&self, v: f64) -> Result<(), Error> {
        check(hostcall::metric_record(self.0, v)).map(drop)
    }
}

/// The host's wall clock, in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    hostcall::time_now()
}

/// Fills buf with cryptographically secure random bytes.
pub fn random_fill(buf: &mut [u8]) {
    hostcall::random_fill(buf);
}

/// Writes the log attributes of a panic at file:line into buf as a list,
/// returning its length: file and line, the path cut to the end that fits
/// (at a character boundary), so that the host always gets whole pairs.
#[cfg(any(test, all(feature = "panic-handler", target_arch = "wasm32")))]
pub(crate) fn panic_attrs(buf: &mut [u8], file: &str, line: u32) -> usize {
    let mut digits = [0u8; 10];
    let line = format_u32(line, &mut digits);
    // Each item takes its bytes and a NUL.
    let room = buf.len().saturating_sub(b"file\0line\0\0\0".len() + line.len());
    let mut cut = file.len().saturating_sub(room);
    while !file.is_char_boundary(cut) {
        cut += 1;
    }
    let mut w = ListWriter::new(buf);
    for item in [&b"file"[..], file[cut..].as_bytes(), b"line", line] {
        w.push(item);
    }
    w.finish().unwrap_or(0) // a NUL in the path: no attributes
}

/// Formats v in decimal into buf, returning the digits.
#[cfg(any(test, all(feature = "panic-handler", target_arch = "wasm32")))]
fn format_u32(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn format_u32() {
        let mut b = [0u8; 10];
        assert_eq!(super::format_u32(0, &mut b), b"0");
        assert_eq!(super::format_u32(4294967295, &mut b), b"4294967295");
    }

    // The four items of a panic's attributes.
    fn items(list: &[u8]) -> [&[u8]; 4] {
        let mut it = crate::list::Items::new(list);
        let r = [(); 4].map(|_| it.next().unwrap());
        assert_eq!(it.next(), None);
        r
    }

    // A path too long for the buffer is cut to its end, never leaving a key
    // without its value.
    #[test]
    fn panic_attrs() {
        let mut buf = [0u8; 320];
        let n = super::panic_attrs(&mut buf, "src/lib.rs", 7);
        assert_eq!(items(&buf[..n]), [&b"file"[..], b"src/lib.rs", b"line", b"7"]);

        let mut long = [0u8; 400];
        for (i, c) in long.iter_mut().enumerate() {
            *c = b'0' + (i % 10) as u8;
        }
        let n = super::panic_attrs(&mut buf, core::str::from_utf8(&long).unwrap(), 4294967295);
        assert_eq!(n, buf.len());
        assert_eq!(items(&buf[..n]), [&b"file"[..], &long[400 - 298..], b"line", b"4294967295"]);

        // The cut falls inside a two-byte character: it is dropped whole.
        let mut wide = [0u8; 400];
        for c in wide.chunks_mut(2) {
            c.copy_from_slice("é".as_bytes());
        }
        let n = super::panic_attrs(&mut buf, core::str::from_utf8(&wide).unwrap(), 1);
        assert_eq!(items(&buf[..n])[1], &wide[400 - 306..]);

        assert_eq!(super::panic_attrs(&mut buf, "a\0b", 1), 0);
    }
}
