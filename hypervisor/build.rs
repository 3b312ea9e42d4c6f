//! Links the bare-metal hypervisor image with its linker script.
fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bin=xenolith=-T{dir}/xenolith.ld");
        // The entry path is global_asm in the boot crate, referenced by nothing in Rust.
        println!("cargo:rustc-link-arg-bin=xenolith=--undefined=xenolith_mb_entry32");
    }
    println!("cargo:rerun-if-changed=xenolith.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
