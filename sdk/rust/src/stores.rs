//! The host's stores: the response cache and the rate limiter.

use crate::error::{check, filled};
use crate::{abi, hostcall, Error};

/// What the host knows about a cached entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// Milliseconds since the entry was stored (host clock).
    pub age_ms: i64,
    /// Milliseconds of freshness left: zero or negative once stale.
    pub ttl_ms: i64,
}

fn le_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_le_bytes(a)
}

/// Looks up the entry stored under key: its info and the metadata the
/// plugin stored with it, copied into buf (which must hold 16 bytes more
/// than the metadata: [`Error::Short`] says how many in all).
pub fn cache_lookup<'a>(key: &[u8], buf: &'a mut [u8]) -> Result<(CacheInfo, &'a [u8]), Error> {
    let size = abi::CACHE_INFO_SIZE as usize;
    let r = hostcall::cache_lookup(key, buf);
    let b = filled(r, buf)?;
    if b.len() < size {
        return Err(Error::Invalid);
    }
    let info = CacheInfo { age_ms: le_i64(&b[..8]), ttl_ms: le_i64(&b[8..16]) };
    Ok((info, &b[size..]))
}

/// Stores the current response under key (in the response phase the
/// origin's, in the request phase the answer being built), fresh for
/// `ttl_ms`, kept `stale_ms` longer, with the plugin's metadata and tags
/// (a list: build it with [`crate::write_list`]).
pub fn cache_store(key: &[u8], meta: &[u8], ttl_ms: i64, stale_ms: i64, tags: &[u8]) -> Result<(), Error> {
    check(hostcall::cache_store(key, meta, ttl_ms, stale_ms, tags)).map(drop)
}

/// Makes the entry under key the current response (its body never passes
/// through the plugin) and returns its status; in the request phase, then
/// return [`crate::Action::Answer`].
pub fn cache_serve(key: &[u8]) -> Result<u16, Error> {
    check(hostcall::cache_serve(key)).map(|s| s as u16)
}

/// What [`cache_purge`] removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Purge {
    /// The entry stored under a key.
    Key = abi::PURGE_KEY,
    /// Every entry stored with a tag.
    Tag = abi::PURGE_TAG,
}

/// Removes the entry under a key or every entry with a tag; returns how
/// many.
pub fn cache_purge(kind: Purge, what: &[u8]) -> Result<u32, Error> {
    check(hostcall::cache_purge(kind as i32, what)).map(|n| n as u32)
}

/// Schedules a background revalidation of the entry under key, with a copy
/// of the request as it is now; it runs only if this request phase
/// answers. Returns false when the host skipped it (being revalidated
/// already, or at its bound): serve the stale response all the same.
/// [`Error::Unavailable`]: revalidate in the foreground.
pub fn cache_revalidate(key: &[u8]) -> Result<bool, Error> {
    check(hostcall::cache_revalidate(key)).map(|r| r == 1)
}

/// The flags of [`cache_request`] and [`cache_response`] (package
/// wasm/abi/httpcache).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheFlags(pub i32);

impl CacheFlags {
    /// cache_request answered: return [`crate::Action::Answer`]. For
    /// cache_response, the same bit means Settled.
    pub const ANSWERED: i32 = 1;
    /// cache_response settled the response: nothing is left to decide.
    pub const SETTLED: i32 = 1;
    /// The answer came from the cache.
    pub const HIT: i32 = 2;
    /// The request goes to the origin for this cache.
    pub const FORWARD: i32 = 4;
    /// A background revalidation was scheduled.
    pub const REVALIDATING: i32 = 8;

    /// Whether every bit of `flag` is set.
    pub const fn has(self, flag: i32) -> bool {
        self.0 & flag == flag
    }
}

/// Runs the request phase of the RFC 9111 shared cache in the host for
/// the current GET or HEAD request, reporting in `Cache-Status` under name.
pub fn cache_request(name: &[u8]) -> Result<CacheFlags, Error> {
    check(hostcall::cache_request(name)).map(CacheFlags)
}

/// Option of [`cache_response`]: remove `CDN-Cache-Control` too.
pub const STRIP_CDN: i32 = 1;
/// Option of [`cache_response`]: judge the response as stored without its
/// `Set-Cookie`.
pub const STRIP_SET_COOKIE: i32 = 2;

/// Settles, in the host, the response phase of a response the plugin will
/// not store; [`CacheFlags::SETTLED`] or 0 (the plugin decides).
pub fn cache_response(name: &[u8], options: i32) -> Result<CacheFlags, Error> {
    check(hostcall::cache_response(name, options)).map(CacheFlags)
}

/// The outcome of [`ratelimit_take`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateResult {
    /// Whether the take was allowed.
    pub allowed: bool,
    /// Units left now.
    pub remaining: i64,
    /// Milliseconds until the full burst is back.
    pub reset_ms: i64,
    /// When denied, milliseconds until the same take would pass; else 0.
    pub retry_after_ms: i64,
}

/// Takes `cost` units from the allowance of key (GCRA: `limit` units per
/// `period_ms`, bursts of up to `burst`). Keys are shared by every plugin
/// of the node: include the policy's name. `cost` 0 peeks. A key beginning
/// `@region:` or `@global:` is one allowance for every POP of the edge's
/// region, or for every POP (wasm/abi/README.md, `ratelimit_take`).
pub fn ratelimit_take(key: &[u8], limit: u32, period_ms: i64, burst: u32, cost: u32) -> Result<RateResult, Error> {
    let mut res = [0u8; abi::RATE_RESULT_SIZE as usize];
    let to_i32 = |v: u32| i32::try_from(v).map_err(|_| Error::Invalid);
    let r = check(hostcall::ratelimit_take(key, to_i32(limit)?, period_ms, to_i32(burst)?, to_i32(cost)?, &mut res))?;
    Ok(RateResult {
        allowed: r == 1,
        remaining: le_i64(&res[0..8]),
        reset_ms: le_i64(&res[8..16]),
        retry_after_ms: le_i64(&res[16..24]),
    })
}
