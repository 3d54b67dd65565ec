//! The bodies of the guest exports, which [`crate::plugin!`] defines over
//! a static instance. A native test host calls these functions directly.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::{hostcall, Action, Error, Plugin, Request, Response};

/// The plugin instance behind the exports. Wasm instances are
/// single-threaded and the host runs one call at a time, never re-entering
/// the guest, so one mutable reference at a time is all there ever is; the
/// busy flag turns any other use (an export called from plugin code, or
/// from two test threads) into a panic instead of aliased references.
/// [`crate::plugin!`] compiles natively too, where there are threads, so a
/// plugin that is not `Send` cannot be put in one:
///
/// ```compile_fail,E0277
/// #[derive(Default)]
/// struct P(std::rc::Rc<()>);
/// impl wedge::Plugin for P {
///     fn configure(&mut self, _: &[u8]) -> Result<wedge::Features, wedge::Error> {
///         Ok(wedge::Features::REQUEST)
///     }
/// }
/// wedge::plugin!(P);
/// ```
#[doc(hidden)]
pub struct Slot<T> {
    plugin: UnsafeCell<Option<T>>,
    busy: AtomicBool,
}

// SAFETY: access goes through with, which the busy flag makes exclusive;
// T: Send because with hands a &mut T to whichever thread calls it.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    /// An empty slot, filled by configure.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Slot<T> {
        Slot { plugin: UnsafeCell::new(None), busy: AtomicBool::new(false) }
    }

    /// Runs f on the slot's contents.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> R {
        if self.busy.swap(true, Ordering::Acquire) {
            panic!("wedge: plugin export re-entered");
        }
        // SAFETY: the busy flag was clear, so this is the only reference.
        let r = f(unsafe { &mut *self.plugin.get() });
        self.busy.store(false, Ordering::Release);
        r
    }
}

/// Configures `p` with the plugin's configuration bytes and returns the
/// feature mask, or -1 with the error's message set.
pub fn configure<P: Plugin>(p: &mut P) -> i32 {
    let r = with_config(|cfg| p.configure(cfg));
    match r {
        Ok(f) => f.bits(),
        Err(e) => {
            if e != Error::Reported {
                hostcall::error_set(e.message().as_bytes());
            }
            -1
        }
    }
}

/// Runs the request phase of `p`.
#[inline]
pub fn on_request<P: Plugin>(p: &mut P) -> i32 {
    p.on_request(Request::new(), Response::new()) as i32
}

/// Runs the response phase of `p`.
#[inline]
pub fn on_response<P: Plugin>(p: &mut P) -> i32 {
    p.on_response(Request::new(), Response::new()) as i32
}

/// The result of a phase called before configure, which the host never
/// does.
pub fn unconfigured() -> i32 {
    hostcall::error_set(b"wedge: phase called before configure");
    Action::Fail as i32
}

/// Reads the configuration and passes it to f.
#[cfg(feature = "alloc")]
fn with_config<R>(f: impl FnOnce(&[u8]) -> Result<R, Error>) -> Result<R, Error> {
    let cfg = crate::error::fetch_vec(hostcall::config_read)?;
    f(&cfg)
}

/// Reads the configuration into a stack buffer and passes it to f: without
/// an allocator, a configuration is at most CONFIG_MAX bytes.
#[cfg(not(feature = "alloc"))]
fn with_config<R>(f: impl FnOnce(&[u8]) -> Result<R, Error>) -> Result<R, Error> {
    const CONFIG_MAX: usize = 8192;
    let mut buf = [0u8; CONFIG_MAX];
    let n = hostcall::config_read(&mut buf);
    if n as usize > CONFIG_MAX {
        return Err(Error::Msg("wedge: configuration over 8 KiB: enable the SDK's alloc feature"));
    }
    f(&buf[..crate::error::check(n)? as usize])
}
