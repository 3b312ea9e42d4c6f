//! `set_gdt` and `update_descriptor` (Xen's `xen/arch/x86/pv/descriptor-tables.c`).
//!
//! A PV guest's GDT frames are validated as descriptor pages (`pvmm`) and held with a type
//! reference; their descriptors are copied into the first 14 pages of the CPU's GDT while the
//! vCPU runs, below the hypervisor's own entries at 0xe000.

use super::Ctx;
use crate::domain::Vcpu;
use crate::guest_mem::copy_from_guest;
use crate::mm::frametable;
use crate::pvmm;
use xen_abi::errno::Errno;
use xenolith_arch::gdt::{CpuTables, GUEST_GDT_ENTRIES};
use xenolith_arch::layout::phys_to_virt;
use xenolith_arch::percpu;

/// Copies `v`'s GDT into this CPU's GDT (on entry to the vCPU and after changes).
pub fn load_guest_gdt(v: &Vcpu) {
    let info = percpu::current();
    // SAFETY: each CPU's tables are leaked at bring-up and only that CPU writes its guest
    // entries (here, with the vCPU it runs).
    let tables = unsafe { &mut *(info.tables as *mut CpuTables) };
    let g = tables.guest_entries_mut();
    // Xen maps the guest's GDT frames whole: every descriptor of each frame is live (all of
    // them were validated when the frame became a descriptor page), not just `entries`.
    let n = (v.pv.gdt_frames.len() * 512).min(GUEST_GDT_ENTRIES);
    for (i, slot) in g.iter_mut().enumerate() {
        *slot = if i < n {
            let mfn = v.pv.gdt_frames[i / 512];
            // SAFETY: the frame is held as a validated descriptor page of the domain and
            // reachable through the direct map.
            unsafe {
                (phys_to_virt(mfn << 12) as *const u64)
                    .add(i % 512)
                    .read_volatile()
            }
        } else {
            0
        };
    }
}

/// `set_gdt(frame_list, entries)`.
pub fn do_set_gdt(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (list, entries) = (a[0], a[1] as u32);
    if entries as usize > GUEST_GDT_ENTRIES {
        return Err(Errno::EINVAL);
    }
    let nr = entries.div_ceil(512) as usize;
    let mut raw = alloc::vec![0u8; nr * 8];
    copy_from_guest(&mut raw, list)?;
    let frames: alloc::vec::Vec<u64> = raw
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    let dom = ctx.vcpu.domain().id;
    {
        let mut env = frametable::lock();
        pvmm::get_gdt_frames(&mut env, dom, &frames, entries)?;
        let old = core::mem::take(&mut ctx.vcpu.pv.gdt_frames);
        pvmm::put_gdt_frames(&mut env, &old, ctx.vcpu.pv.gdt_entries);
    }
    ctx.vcpu.pv.gdt_frames = frames;
    ctx.vcpu.pv.gdt_entries = entries;
    load_guest_gdt(ctx.vcpu);
    Ok(0)
}

/// `update_descriptor(maddr, desc)`.
pub fn do_update_descriptor(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (maddr, desc) = (a[0], a[1]);
    let dom = ctx.vcpu.domain().id;
    {
        let mut env = frametable::lock();
        pvmm::update_descriptor(&mut env, dom, maddr, desc)?;
    }
    if ctx.vcpu.pv.gdt_frames.contains(&(maddr >> 12)) {
        load_guest_gdt(ctx.vcpu);
    }
    Ok(0)
}
