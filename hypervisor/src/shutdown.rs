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

/// PM1a/PM1b control ports and the S5 sleep-type values: `port_a | port_b << 16 | typ_a << 32 |
/// typ_b << 40 | valid << 63`.
static ACPI_S5: AtomicU64 = AtomicU64::new(0);

/// Records how to enter S5 (from the FADT's PM1 control blocks and the DSDT's `\_S5_`).
pub fn set_acpi_poweroff(pm1a: u16, pm1b: Option<u16>, typ_a: u8, typ_b: u8) {
    let v = u64::from(pm1a)
        | (u64::from(pm1b.unwrap_or(0)) << 16)
        | (u64::from(typ_a) << 32)
        | (u64::from(typ_b) << 40)
        | (1 << 63);
    ACPI_S5.store(v, Ordering::Relaxed);
}

/// Powers the machine off through ACPI S5; halts if that is unavailable or does not take.
pub fn poweroff() -> ! {
    console::flush();
    x86_64::instructions::interrupts::disable();
    let v = ACPI_S5.load(Ordering::Relaxed);
    if v & (1 << 63) != 0 {
        const SLP_EN: u16 = 1 << 13;
        let (a, b) = (v as u16, (v >> 16) as u16);
        let (ta, tb) = (((v >> 32) & 7) as u16, ((v >> 40) & 7) as u16);
        // SAFETY: writing SLP_TYP|SLP_EN to the PM1 control registers the FADT names is the
        // ACPI-defined way to enter S5; we are shutting down.
        unsafe {
            Port::<u16>::new(a).write((ta << 10) | SLP_EN);
            if b != 0 {
                Port::<u16>::new(b).write((tb << 10) | SLP_EN);
            }
        }
        crate::time::delay_us(100_000);
    }
    console::print_fatal(format_args!("Power-off failed: halting the machine\n"));
    xenolith_arch::cpu::halt_forever()
}

/// The hardware domain crashed: Xen's wording and policy (`hwdom_shutdown`, SHUTDOWN_crash).
pub fn dom0_crashed() -> ! {
    if NOREBOOT.load(Ordering::Relaxed) {
        console::print_fatal(format_args!("'noreboot' set - not rebooting.\n"));
        console::flush();
        xenolith_arch::cpu::halt_forever();
    }
    console::print_fatal(format_args!("rebooting machine in 5 seconds.\n"));
    console::flush();
    crate::time::delay_us(5_000_000);
    reboot()
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
