//! Local APIC in xAPIC (MMIO) or x2APIC (MSR) mode, and the 8259 PIC / IO-APIC masking.

use crate::cpu::{rdmsr, wrmsr};
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// Register offsets (xAPIC MMIO offsets; x2APIC MSR = 0x800 + offset / 16).
pub mod reg {
    /// APIC ID.
    pub const ID: u32 = 0x20;
    /// Version.
    pub const VERSION: u32 = 0x30;
    /// Task priority.
    pub const TPR: u32 = 0x80;
    /// End of interrupt.
    pub const EOI: u32 = 0xb0;
    /// Spurious interrupt vector (and software enable).
    pub const SVR: u32 = 0xf0;
    /// Error status.
    pub const ESR: u32 = 0x280;
    /// Interrupt command (low half in xAPIC).
    pub const ICR: u32 = 0x300;
    /// Interrupt command, destination (xAPIC only).
    pub const ICR2: u32 = 0x310;
    /// LVT timer.
    pub const LVT_TIMER: u32 = 0x320;
    /// LVT LINT0.
    pub const LVT_LINT0: u32 = 0x350;
    /// LVT LINT1.
    pub const LVT_LINT1: u32 = 0x360;
    /// LVT error.
    pub const LVT_ERROR: u32 = 0x370;
    /// Timer initial count.
    pub const TIMER_INITIAL: u32 = 0x380;
    /// Timer current count.
    pub const TIMER_CURRENT: u32 = 0x390;
    /// Timer divide configuration.
    pub const TIMER_DIVIDE: u32 = 0x3e0;
}

/// LVT mask bit.
pub const LVT_MASKED: u32 = 1 << 16;
/// ICR: INIT delivery, level assert.
pub const ICR_INIT: u32 = 0x4500;
/// ICR: start-up delivery, level assert (| vector).
pub const ICR_STARTUP: u32 = 0x4600;
/// ICR: fixed delivery, level assert (| vector).
pub const ICR_FIXED: u32 = 0x4000;
/// ICR delivery-status bit (xAPIC only).
const ICR_BUSY: u32 = 1 << 12;

const MODE_NONE: u8 = 0;
const MODE_XAPIC: u8 = 1;
const MODE_X2APIC: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
static MMIO_BASE: AtomicU64 = AtomicU64::new(0);

/// The APIC access mode in use on every CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Memory-mapped registers at the given virtual address.
    XApic,
    /// MSR-based registers.
    X2Apic,
}

/// Chooses the mode for all CPUs: x2APIC when `use_x2apic`, else xAPIC through `mmio_va`.
pub fn set_mode(use_x2apic: bool, mmio_va: u64) {
    MMIO_BASE.store(mmio_va, Ordering::Relaxed);
    MODE.store(
        if use_x2apic { MODE_X2APIC } else { MODE_XAPIC },
        Ordering::Release,
    );
}

/// The mode chosen by [`set_mode`].
pub fn mode() -> Mode {
    if MODE.load(Ordering::Acquire) == MODE_X2APIC {
        Mode::X2Apic
    } else {
        Mode::XApic
    }
}

/// Reads a register.
pub fn read(r: u32) -> u32 {
    match mode() {
        // SAFETY: x2APIC mode is enabled on this CPU and the register exists.
        Mode::X2Apic => unsafe { rdmsr(0x800 + (r >> 4)) as u32 },
        Mode::XApic => {
            let va = MMIO_BASE.load(Ordering::Relaxed) + u64::from(r);
            // SAFETY: the LAPIC page is mapped uncached at MMIO_BASE (set_mode's contract).
            unsafe { (va as *const u32).read_volatile() }
        }
    }
}

/// Writes a register.
pub fn write(r: u32, v: u32) {
    match mode() {
        // SAFETY: x2APIC mode is enabled on this CPU and the register exists.
        Mode::X2Apic => unsafe { wrmsr(0x800 + (r >> 4), u64::from(v)) },
        Mode::XApic => {
            let va = MMIO_BASE.load(Ordering::Relaxed) + u64::from(r);
            // SAFETY: as in `read`.
            unsafe { (va as *mut u32).write_volatile(v) }
        }
    }
}

/// Enables the local APIC of the executing CPU (x2APIC mode switch if chosen), with the given
/// spurious vector, LINT0/LINT1 masked except NMI on LINT1, and TPR 0.
pub fn enable_local(spurious_vector: u8) {
    const APIC_BASE_EN: u64 = 1 << 11;
    const APIC_BASE_EXTD: u64 = 1 << 10;
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting EN (and EXTD when the CPU has
    // x2APIC, checked by the caller through `set_mode`) is the architectural enable sequence.
    unsafe {
        let mut base = rdmsr(crate::cpu::msr::APIC_BASE) | APIC_BASE_EN;
        if mode() == Mode::X2Apic {
            base |= APIC_BASE_EXTD;
        }
        wrmsr(crate::cpu::msr::APIC_BASE, base);
    }
    write(reg::TPR, 0);
    write(reg::LVT_LINT0, LVT_MASKED);
    write(reg::LVT_LINT1, 0x400); // NMI delivery
    write(reg::LVT_ERROR, LVT_MASKED);
    write(reg::LVT_TIMER, LVT_MASKED);
    write(reg::SVR, 0x100 | u32::from(spurious_vector));
}

/// The executing CPU's APIC id.
pub fn id() -> u32 {
    match mode() {
        Mode::X2Apic => read(reg::ID),
        Mode::XApic => read(reg::ID) >> 24,
    }
}

/// Signals end of interrupt.
pub fn eoi() {
    write(reg::EOI, 0);
}

/// Sends an IPI with command `icr_low` to the CPU with APIC id `dest`.
pub fn send_ipi(dest: u32, icr_low: u32) {
    match mode() {
        Mode::X2Apic => {
            // SAFETY: x2APIC ICR write; the destination and command come from the caller.
            unsafe { wrmsr(0x830, (u64::from(dest) << 32) | u64::from(icr_low)) }
        }
        Mode::XApic => {
            write(reg::ICR2, dest << 24);
            write(reg::ICR, icr_low);
            for _ in 0..1_000_000 {
                if read(reg::ICR) & ICR_BUSY == 0 {
                    break;
                }
                core::hint::spin_loop();
            }
        }
    }
}

/// Timer divide-by-16 (the DCR encoding).
const DIVIDE_16: u32 = 0b0011;

/// Starts the timer counting down from `count` with the given vector, masked or not.
pub fn timer_start(vector: u8, count: u32, masked: bool) {
    write(reg::TIMER_DIVIDE, DIVIDE_16);
    write(
        reg::LVT_TIMER,
        u32::from(vector) | if masked { LVT_MASKED } else { 0 },
    );
    write(reg::TIMER_INITIAL, count);
}

/// Stops the timer.
pub fn timer_stop() {
    write(reg::TIMER_INITIAL, 0);
    write(reg::LVT_TIMER, LVT_MASKED);
}

/// The timer's current count.
pub fn timer_current() -> u32 {
    read(reg::TIMER_CURRENT)
}

/// Masks both 8259 PICs (the LAPIC and IO-APIC route interrupts instead).
pub fn mask_pic() {
    // SAFETY: writing the interrupt mask registers of the legacy PICs.
    unsafe {
        Port::<u8>::new(0x21).write(0xff);
        Port::<u8>::new(0xa1).write(0xff);
    }
}

/// Routes IO-APIC pin `pin` (of the IO-APIC mapped at `va`) to `vector` on the local APIC
/// `dest` (fixed delivery, physical destination), with the given trigger and polarity, and
/// unmasks it.
///
/// # Safety
/// `va` must map the IO-APIC's register window uncached; `pin` must exist.
pub unsafe fn ioapic_route(va: u64, pin: u32, vector: u8, dest: u32, level: bool, low: bool) {
    let sel = va as *mut u32;
    let win = (va + 0x10) as *mut u32;
    let low_word = u32::from(vector) | (u32::from(low) << 13) | (u32::from(level) << 15);
    // SAFETY: IOREGSEL/IOWIN accesses within the window the caller mapped; the high word
    // (destination) is written first, while the entry is still masked.
    unsafe {
        sel.write_volatile(0x10 + 2 * pin + 1);
        win.write_volatile((dest & 0xff) << 24);
        sel.write_volatile(0x10 + 2 * pin);
        win.write_volatile(low_word);
    }
}

/// Masks every redirection entry of the IO-APIC mapped at `va`; returns the entry count.
///
/// # Safety
/// `va` must map the IO-APIC's register window uncached.
pub unsafe fn mask_ioapic(va: u64) -> u32 {
    let sel = va as *mut u32;
    let win = (va + 0x10) as *mut u32;
    // SAFETY: IOREGSEL/IOWIN accesses within the window the caller mapped.
    unsafe {
        sel.write_volatile(1);
        let entries = ((win.read_volatile() >> 16) & 0xff) + 1;
        for i in 0..entries {
            sel.write_volatile(0x10 + 2 * i);
            let low = win.read_volatile();
            win.write_volatile(low | LVT_MASKED);
        }
        entries
    }
}
