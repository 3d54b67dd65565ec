//! The Rust guest SDK for Wedge plugins (ABI v1, wasm/abi/README.md).
//!
//! A plugin is a `cdylib` crate that implements [`Plugin`] and exports it
//! with [`plugin!`]:
//!
//! ```ignore
//! use wedge::{Action, Error, Features, Plugin, Request, Response};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn configure(&mut self, _config: &[u8]) -> Result<Features, Error> {
//!         Ok(Features::REQUEST)
//!     }
//!     fn on_request(&mut self, req: Request, resp: Response) -> Action {
//!         let mut buf = [0u8; 64];
//!         match req.path(&mut buf) {
//!             Ok(b"/hello") => resp.answer_text(200, b"Hello!"),
//!             _ => Action::Continue,
//!         }
//!     }
//! }
//!
//! wedge::plugin!(Hello);
//! ```
//!
//! The design, fixed so that tools (the native test host in `testing`)
//! build on it:
//!
//! - [`Plugin::configure`] gets the configuration bytes and returns the
//!   [`Features`] (which phases the host calls); `on_request` and
//!   `on_response` get [`Request`] and [`Response`], zero-sized views whose
//!   methods are host calls, as in the Go SDK (package sdk).
//! - `plugin!(Type)` (with `Type: Default`) or `plugin!(Type, expr)` defines
//!   the four `wedge_*` exports over one static instance, made by each
//!   configure call; the exports run [`exports::configure`],
//!   [`exports::on_request`] and [`exports::on_response`]. The native test
//!   host (`testing`) drives the trait directly.
//! - Readers take the caller's buffer (`&mut [u8]`) and return the part the
//!   host filled, or [`Error::Short`] with the length needed: nothing on the
//!   request path allocates. The `alloc` feature (on by default) adds
//!   `Vec` conveniences; the crate itself is `#![no_std]`.
//!
//! **no_std plugins and panics.** A plugin crate that uses `std` (the
//! default for a `cdylib`) needs nothing more: a panic aborts, which traps
//! the call and the host reports it. A `#![no_std]` plugin must supply a
//! panic handler: enable this crate's `panic-handler` feature (on wasm32 it
//! logs the panic's location at error level and traps), or write its own
//! `#[panic_handler]`. With `alloc` it must also have a `#[global_allocator]`,
//! or turn the feature off (`default-features = false`).
#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod abi;
pub mod hostcall;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
#[cfg(target_arch = "wasm32")]
mod sys;

#[cfg(all(test, feature = "alloc"))]
mod api_tests;
pub mod base64;
mod crypto;
mod error;
pub mod exports;
mod http;
pub mod json;
mod list;
mod observe;
pub mod query;
mod stores;
pub mod token;

pub use crypto::*;
pub use error::Error;
pub use http::{Header, Request, Response};
pub use list::{write_list, Items};
pub use observe::*;
pub use stores::*;

/// What a phase returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Action {
    /// Go on: the next plugin, then the origin.
    Continue = abi::ACTION_CONTINUE,
    /// Stop the chain and send the response the plugin built (request
    /// phase only).
    Answer = abi::ACTION_ANSWER,
    /// The plugin failed: the host applies its failure policy. Use
    /// [`Action::fail`] to say why.
    Fail = abi::ACTION_FAIL,
}

impl Action {
    /// Sets `err`'s message as the call's failure message and returns
    /// [`Action::Fail`].
    pub fn fail(err: Error) -> Action {
        set_error(err.message().as_bytes());
        Action::Fail
    }
}

/// Sets the failure message of the current call (truncated by the host to
/// 1 KiB), for a message built at run time; then return [`Action::Fail`],
/// or [`Error::Reported`] from configure.
pub fn set_error(msg: &[u8]) {
    hostcall::error_set(msg);
}

/// The phases a plugin wants the host to call, returned by configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features(i32);

impl Features {
    /// The request phase (`on_request`).
    pub const REQUEST: Features = Features(abi::FEATURE_REQUEST);
    /// The response phase (`on_response`).
    pub const RESPONSE: Features = Features(abi::FEATURE_RESPONSE);
    /// Both phases.
    pub const BOTH: Features = Features(abi::FEATURE_REQUEST | abi::FEATURE_RESPONSE);

    /// The ABI's feature mask.
    pub const fn bits(self) -> i32 {
        self.0
    }
}

impl core::ops::BitOr for Features {
    type Output = Features;
    fn bitor(self, rhs: Features) -> Features {
        Features(self.0 | rhs.0)
    }
}

/// A Wedge plugin. One instance serves one call at a time, but the phases
/// of one request may run on different instances: per-request state belongs
/// in request values ([`Request::set_value`]), not in `self`.
pub trait Plugin {
    /// Runs once per instance, before any request, with the plugin's
    /// configuration (commonly JSON; see the `json` module). It registers
    /// keys and metrics and returns the phases the host calls; an error
    /// refuses the load with its message. Configure must be deterministic.
    fn configure(&mut self, config: &[u8]) -> Result<Features, Error>;

    /// The request phase, in chain order: returns [`Action::Continue`],
    /// [`Action::Answer`] (after building the answer on `resp`) or a
    /// failure. Called only if configure returned [`Features::REQUEST`].
    fn on_request(&mut self, _req: Request, _resp: Response) -> Action {
        Action::Continue
    }

    /// The response phase, in reverse chain order: returns
    /// [`Action::Continue`] or a failure. Called only if configure returned
    /// [`Features::RESPONSE`].
    fn on_response(&mut self, _req: Request, _resp: Response) -> Action {
        Action::Continue
    }
}

/// Defines the four `wedge_*` exports of ABI v1 over one static instance
/// of a [`Plugin`]: `plugin!(Type)` makes it with `Default`,
/// `plugin!(Type, expr)` with `expr`. Use it once, in the crate root.
#[macro_export]
macro_rules! plugin {
    ($ty:ty) => {
        $crate::plugin!($ty, <$ty as ::core::default::Default>::default());
    };
    ($ty:ty, $init:expr) => {
        static __WEDGE_PLUGIN: $crate::exports::Slot<$ty> = $crate::exports::Slot::new();

        /// The ABI version marker; never called.
        #[no_mangle]
        pub extern "C" fn wedge_abi_v1() {}

        /// Makes the instance's plugin and configures it.
        #[no_mangle]
        pub extern "C" fn wedge_configure() -> i32 {
            __WEDGE_PLUGIN.with(|p| $crate::exports::configure(p.insert($init)))
        }

        /// The request phase.
        #[no_mangle]
        pub extern "C" fn wedge_on_request() -> i32 {
            __WEDGE_PLUGIN.with(|p| match p {
                ::core::option::Option::Some(p) => $crate::exports::on_request(p),
                ::core::option::Option::None => $crate::exports::unconfigured(),
            })
        }

        /// The response phase.
        #[no_mangle]
        pub extern "C" fn wedge_on_response() -> i32 {
            __WEDGE_PLUGIN.with(|p| match p {
                ::core::option::Option::Some(p) => $crate::exports::on_response(p),
                ::core::option::Option::None => $crate::exports::unconfigured(),
            })
        }
    };
}

#[cfg(all(feature = "panic-handler", target_arch = "wasm32"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // Only the location: formatting the message would pull core::fmt's
    // machinery into every module.
    let mut attrs = [0u8; 320];
    let n = match info.location() {
        Some(loc) => observe::panic_attrs(&mut attrs, loc.file(), loc.line()),
        None => 0,
    };
    hostcall::log(abi::LEVEL_ERROR, b"plugin panicked", &attrs[..n]);
    core::arch::wasm32::unreachable()
}
