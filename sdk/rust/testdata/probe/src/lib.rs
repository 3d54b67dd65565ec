//! The native host's probe as a Wasm plugin: see src/native/probe.rs in
//! the SDK, the one source of both.

use wedge::{abi, hostcall as hc, Action, Error, Features, Plugin, Request, Response};

include!("../../../src/native/probe.rs");

wedge::plugin!(Probe);
