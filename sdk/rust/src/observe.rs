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

/// Formats v in decimal into buf, returning the digits.
#[cfg(any(test, all(feature = "panic-handler", target_arch = "wasm32")))]
pub(crate) fn format_u32(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
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
}
