//! Saving and restoring a guest's FPU/SSE/AVX state when a CPU switches vCPUs (XSAVE of every
//! component enabled in XCR0, or FXSAVE on CPUs without XSAVE).

/// A save area: 4 KiB, 64-byte aligned, enough for x87, SSE and AVX.
#[repr(C, align(64))]
pub struct FpuArea(pub [u8; 4096]);

impl FpuArea {
    /// The state a vCPU starts with: every component in its initial configuration (XSAVE
    /// header empty) and the default control words (FCW 0x37f, MXCSR 0x1f80), which XRSTOR
    /// loads from the legacy area whatever the header says.
    pub fn initial() -> Self {
        let mut a = FpuArea([0; 4096]);
        a.0[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        a.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        a
    }
}

#[cfg(target_os = "none")]
fn has_xsave() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static XSAVE: AtomicU8 = AtomicU8::new(0);
    match XSAVE.load(Ordering::Relaxed) {
        0 => {
            let os_xsave = crate::cpu::read_cr4() & (1 << 18) != 0;
            XSAVE.store(if os_xsave { 2 } else { 1 }, Ordering::Relaxed);
            os_xsave
        }
        v => v == 2,
    }
}

/// Saves this CPU's FPU state into `area`. CR0.TS must be clear.
#[cfg(target_os = "none")]
pub fn save(area: &mut FpuArea) {
    let p = area.0.as_mut_ptr();
    if has_xsave() {
        // SAFETY: `area` is 64-byte aligned and large enough for the XCR0 components; the
        // all-ones mask saves every enabled component.
        unsafe {
            core::arch::asm!("xsave64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack))
        };
    } else {
        // SAFETY: `area` is 16-byte aligned and at least 512 bytes.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) p, options(nostack)) };
    }
}

/// Loads this CPU's FPU state from `area` (saved by [`save`] or [`FpuArea::initial`]). CR0.TS
/// must be clear.
#[cfg(target_os = "none")]
pub fn restore(area: &FpuArea) {
    let p = area.0.as_ptr();
    if has_xsave() {
        // SAFETY: as in `save`; the area holds a valid XSAVE image (header zero at first).
        unsafe {
            core::arch::asm!("xrstor64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack))
        };
    } else {
        // SAFETY: a valid FXSAVE image.
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) p, options(nostack)) };
    }
}
