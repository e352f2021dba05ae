//! Node-API link setup.
fn main() {
    napi_build::setup();
}
