//! A Rust guest that continues every request: wasmbuild's Cargo test case.
//! It uses the raw bindings only, so it builds whatever the SDK's higher
//! layers look like.

use wedge::abi;

#[no_mangle]
pub extern "C" fn wedge_abi_v1() {}

#[no_mangle]
pub extern "C" fn wedge_configure() -> i32 {
    abi::FEATURE_REQUEST
}

#[no_mangle]
pub extern "C" fn wedge_on_request() -> i32 {
    abi::ACTION_CONTINUE
}

#[no_mangle]
pub extern "C" fn wedge_on_response() -> i32 {
    abi::ACTION_CONTINUE
}
