//! The Xenolith hypervisor image (bare-metal entry point).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
mod kernel {
    use xenolith_boot as _;
    use xenolith_arch::serial::{COM1_BASE, LineConfig, Uart};

    /// Called by `xenolith_entry64` on the BSP boot stack.
    #[unsafe(no_mangle)]
    extern "C" fn xenolith_start(magic: u32, info: u32) -> ! {
        xenolith::mm::heap::init();
        let u = Uart::new(COM1_BASE);
        u.init(&LineConfig::default());
        for b in b"(XEN) hello from xenolith\r\n" {
            u.write_byte(*b);
        }
        let _ = (magic, info);
        loop {
            x86_64::instructions::hlt();
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}
