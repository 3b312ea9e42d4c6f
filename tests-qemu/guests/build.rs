//! Links the bare-metal guests (`pvtest`, `pvhtest`) with their linker scripts (only for the
//! bare-metal target; the host build is a stub binary).
fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bin=pvtest=-T{dir}/pvtest.ld");
        println!("cargo:rustc-link-arg-bin=pvhtest=-T{dir}/pvhtest.ld");
    }
    println!("cargo:rerun-if-changed=pvtest.ld");
    println!("cargo:rerun-if-changed=pvhtest.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
