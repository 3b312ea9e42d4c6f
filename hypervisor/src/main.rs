//! The Xenolith hypervisor image (bare-metal entry point: see `xenolith::setup`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod kernel {
    // The entry path (global_asm) lives in the boot crate and the Rust entry in the library:
    // both must be linked in even though nothing here names them.
    use xenolith as _;
    use xenolith_boot as _;

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        xenolith::console::print_fatal(format_args!(
            "\n****************************************\nPanic on CPU {}:\n{}\n****************************************\n",
            xenolith_arch::percpu::current().cpu,
            info
        ));
        xenolith::shutdown::fatal_stop()
    }
}
