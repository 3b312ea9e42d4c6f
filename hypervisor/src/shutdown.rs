//! Halting and rebooting the machine after a fatal error (`noreboot` keeps it halted).

use crate::console;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::instructions::port::Port;

static NOREBOOT: AtomicBool = AtomicBool::new(false);
/// ACPI reset register (I/O port) and value, when the FADT offers one: `(port << 8) | value`.
static ACPI_RESET: AtomicU64 = AtomicU64::new(0);

/// Records the `noreboot` option.
pub fn set_noreboot(v: bool) {
    NOREBOOT.store(v, Ordering::Relaxed);
}

/// Records the FADT reset register when it is an I/O port.
pub fn set_acpi_reset(port: u16, value: u8) {
    ACPI_RESET.store(
        (u64::from(port) << 8) | u64::from(value) | (1 << 63),
        Ordering::Relaxed,
    );
}

/// Stops after a panic: halts with `noreboot`, else reboots after five seconds (Xen's wording).
pub fn fatal_stop() -> ! {
    if NOREBOOT.load(Ordering::Relaxed) {
        console::print_fatal(format_args!(
            "Manual reset required ('noreboot' specified)\n"
        ));
        console::flush();
        xenolith_arch::cpu::halt_forever();
    }
    console::print_fatal(format_args!("Reboot in five seconds...\n"));
    console::flush();
    crate::time::delay_us(5_000_000);
    reboot()
}

/// Resets the machine: ACPI reset register, then port 0xcf9, then the keyboard controller, then
/// a triple fault.
pub fn reboot() -> ! {
    x86_64::instructions::interrupts::disable();
    let acpi = ACPI_RESET.load(Ordering::Relaxed);
    // SAFETY: each write is a documented reset mechanism of the PC platform; we are resetting.
    unsafe {
        if acpi & (1 << 63) != 0 {
            Port::<u8>::new((acpi >> 8) as u16).write(acpi as u8);
        }
        Port::<u8>::new(0xcf9).write(0x06);
        Port::<u8>::new(0x64).write(0xfe);
        let null = x86_64::structures::DescriptorTablePointer {
            limit: 0,
            base: x86_64::VirtAddr::new(0),
        };
        x86_64::instructions::tables::lidt(&null);
        core::arch::asm!("int3");
    }
    xenolith_arch::cpu::halt_forever()
}
