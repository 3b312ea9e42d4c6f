//! Segment descriptors a 64-bit PV guest may install (GDT/LDT pages), from Xen 4.17's
//! `xen/arch/x86/pv/descriptor-tables.c` (`check_descriptor`, `do_update_descriptor`,
//! `pv_set_gdt`) and `asm/x86_64/system.h`/`desc.h` (`__fixup_guest_selector`,
//! `guest_gate_selector_okay`).

use super::page::PageType;
use super::refs::{
    get_page, get_page_and_type, get_page_type, put_page, put_page_and_type, put_page_type,
};
use super::{DomId, FrameEnv, Mfn};
use xen_abi::errno::Errno;

/// `_SEGMENT_TYPE`: the type field, bits 8-11 of the descriptor's high word.
pub const SEGMENT_TYPE: u32 = 15 << 8;
/// `_SEGMENT_S`: code/data (set) or system (clear) descriptor.
pub const SEGMENT_S: u32 = 1 << 12;
/// `_SEGMENT_DPL`.
pub const SEGMENT_DPL: u32 = 3 << 13;
/// `_SEGMENT_P`: present.
pub const SEGMENT_P: u32 = 1 << 15;
/// The type field of a 64-bit call gate (the only system descriptor a guest may install).
pub const DESC_GATE_TYPE_CALL64: u32 = 0xc << 8;

/// `GUEST_KERNEL_RPL` of a 64-bit PV guest: its kernel runs in ring 3.
const GUEST_KERNEL_RPL: u32 = 3;
/// `FLAT_KERNEL_CS` (64-bit): `FLAT_RING3_CS64`.
const FLAT_KERNEL_CS: u32 = xen_abi::arch_x86::FLAT_KERNEL_CS as u32;
/// `FIRST_RESERVED_GDT_ENTRY`: GDT entries from here on (page 14 on) are Xen's.
use xen_abi::arch_x86::FIRST_RESERVED_GDT_ENTRY;
/// Descriptors per page.
const DESCS_PER_PAGE: u32 = 512;

/// `guest_gate_selector_okay`: a gate's target selector must be a guest GDT entry, Xen's flat
/// kernel code segment, or an LDT selector — never a Xen-private GDT entry, since the
/// selector's RPL is ignored when a gate is used.
const fn guest_gate_selector_okay(sel: u32) -> bool {
    (sel >> 3) < FIRST_RESERVED_GDT_ENTRY || sel == FLAT_KERNEL_CS || sel & 4 != 0
}

/// `check_descriptor` for a 64-bit PV guest: the descriptor the guest may have, fixed up, or
/// `None` if it may not have it.
///
/// * Not present: allowed unchanged (it always faults).
/// * Code and data segments: allowed, DPL raised to the guest kernel's ring 3
///   (`__fixup_guest_selector`). No base/limit checks.
/// * Type 0 system descriptors: allowed unchanged (the upper half of a 16-byte call gate).
/// * 64-bit call gates: the target selector must pass `guest_gate_selector_okay`; the DPL is
///   forced to 0 so every use faults and is emulated, the original (fixed) DPL is kept in the
///   selector's RPL, and the reserved bits 0-7 of the high word must be zero.
/// * Every other system descriptor (LDT, TSS, interrupt/trap gates): refused.
pub const fn check_descriptor(desc: u64) -> Option<u64> {
    let mut a = desc as u32;
    let mut b = (desc >> 32) as u32;

    // A not-present descriptor will always fault, so is safe.
    if b & SEGMENT_P == 0 {
        return Some(desc);
    }

    // Check and fix up the DPL.
    let mut dpl = (b >> 13) & 3;
    if dpl & 3 < GUEST_KERNEL_RPL {
        dpl = (dpl & !3) | GUEST_KERNEL_RPL;
    }
    b = (b & !SEGMENT_DPL) | (dpl << 13);

    // All code and data segments are okay. No base/limit checking.
    if b & SEGMENT_S == 0 {
        // Invalid type 0 is harmless. It is used for the 2nd half of a call gate.
        if b & SEGMENT_TYPE == 0 {
            return Some(desc);
        }
        // Everything but a call gate is discarded here.
        if b & SEGMENT_TYPE != DESC_GATE_TYPE_CALL64 {
            return None;
        }
        // Validate the target code selector.
        let mut cs = a >> 16;
        if !guest_gate_selector_okay(cs) {
            return None;
        }
        // Force DPL to zero, causing a #GP with the gate in the error code, allowing
        // emulation; store the original DPL in the selector's RPL field.
        b &= !SEGMENT_DPL;
        cs = (cs & !3) | dpl;
        a = (a & 0xffff) | (cs << 16);
        // Reserved bits must be zero.
        if b & 0xff != 0 {
            return None;
        }
    }
    Some(a as u64 | (b as u64) << 32)
}

/// `do_update_descriptor(maddr, desc)`: the guest writes one descriptor into its frame
/// `maddr >> 12`, which must be a descriptor page (it takes a `PGT_seg_desc_page` reference)
/// or otherwise a page it could map writable (a `PGT_writable_page` reference, so never a page
/// table). The fixed-up descriptor is written. -EINVAL for a misaligned address, a descriptor
/// [`check_descriptor`] refuses, a frame that is not `dom`'s, or a type conflict.
pub fn update_descriptor<E: FrameEnv>(
    env: &mut E,
    dom: DomId,
    maddr: u64,
    desc: u64,
) -> Result<(), Errno> {
    // The address must be aligned, or it would corrupt adjacent descriptors.
    if !maddr.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let Some(desc) = check_descriptor(desc) else {
        return Err(Errno::EINVAL);
    };
    let mfn = maddr >> 12;
    get_page(env, mfn, dom)?;
    // Check if the given frame is in use in an unsafe context.
    let ty = match env.page(mfn).map(|p| p.page_type()) {
        Some(PageType::SegDesc) => PageType::SegDesc,
        _ => PageType::Writable,
    };
    if get_page_type(env, mfn, ty).is_err() {
        put_page(env, mfn);
        return Err(Errno::EINVAL);
    }
    env.write_entry(mfn, ((maddr & 0xfff) / 8) as usize, desc);
    put_page_type(env, mfn);
    put_page(env, mfn);
    Ok(())
}

/// The frame-checking half of `pv_set_gdt`: takes a general and a `PGT_seg_desc_page`
/// reference (validating the descriptors) on each of the `ceil(entries / 512)` frames of a
/// new GDT. -EINVAL if `entries` reaches into Xen's reserved GDT entries, `frames` is too
/// short, or a frame fails (the references already taken are dropped). Release with
/// [`put_gdt_frames`] (`pv_destroy_gdt`).
pub fn get_gdt_frames<E: FrameEnv>(
    env: &mut E,
    dom: DomId,
    frames: &[Mfn],
    entries: u32,
) -> Result<(), Errno> {
    if entries > FIRST_RESERVED_GDT_ENTRY {
        return Err(Errno::EINVAL);
    }
    let nr = entries.div_ceil(DESCS_PER_PAGE) as usize;
    let Some(frames) = frames.get(..nr) else {
        return Err(Errno::EINVAL);
    };
    for (i, &mfn) in frames.iter().enumerate() {
        if get_page_and_type(env, mfn, dom, PageType::SegDesc).is_err() {
            for &taken in frames[..i].iter().rev() {
                put_page_and_type(env, taken);
            }
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

/// Releases the frames of a GDT taken by [`get_gdt_frames`] with the same `entries`.
pub fn put_gdt_frames<E: FrameEnv>(env: &mut E, frames: &[Mfn], entries: u32) {
    let nr = (entries
        .min(FIRST_RESERVED_GDT_ENTRY)
        .div_ceil(DESCS_PER_PAGE) as usize)
        .min(frames.len());
    for &mfn in &frames[..nr] {
        put_page_and_type(env, mfn);
    }
}
