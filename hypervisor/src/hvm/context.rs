//! `VCPUOP_initialise` for an HVM vCPU: Xen's `vcpu_hvm_context` (`public/hvm/hvm_vcpu.h`),
//! checked as Xen's `arch_set_info_hvm_guest` checks it, into the back-ends' start state
//! (pure, host-tested).

use xen_abi::errno::Errno;
use xen_abi::hvm::{VCPU_HVM_MODE_32B, VCPU_HVM_MODE_64B, VcpuHvmContext};
use xenolith_arch::hvm::{GuestRegs, StartContext};
use zerocopy::FromBytes;

/// Size of `vcpu_hvm_context_t` (mode, pad, and the larger union member, `vcpu_hvm_x86_32`).
pub const CONTEXT_SIZE: usize = core::mem::size_of::<VcpuHvmContext>();

const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// CR4 bits a guest may have: VME..UMIP (0-11), FSGSBASE, PCIDE, OSXSAVE, SMEP, SMAP.
const CR4_VALID: u64 = 0xfff | (1 << 16) | (1 << 17) | (1 << 18) | (1 << 20) | (1 << 21);
/// EFER bits a guest may have: SCE, LME, LMA, NXE.
const EFER_VALID: u64 = 1 | EFER_LME | EFER_LMA | (1 << 11);

/// The ten registers in Xen's order: ax, cx, dx, bx, sp, bp, si, di, ip, flags.
fn regs_from(r: [u64; 10]) -> GuestRegs {
    GuestRegs {
        rax: r[0],
        rcx: r[1],
        rdx: r[2],
        rbx: r[3],
        rsp: r[4],
        rbp: r[5],
        rsi: r[6],
        rdi: r[7],
        rip: r[8],
        rflags: r[9] | 2,
        ..GuestRegs::default()
    }
}

/// Checks a `vcpu_hvm_context` and returns the state to start the vCPU in; `-EINVAL` for
/// anything Xen refuses.
pub fn parse(b: &[u8; CONTEXT_SIZE]) -> Result<StartContext, Errno> {
    let c = VcpuHvmContext::read_from_bytes(b).map_err(|_| Errno::EINVAL)?;
    if c.pad != 0 {
        return Err(Errno::EINVAL);
    }
    let mut ctx = match c.mode {
        VCPU_HVM_MODE_64B => {
            let r = c.x86_64();
            let g = [
                r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi, r.rip, r.rflags,
            ];
            let ctx = StartContext {
                long: true,
                regs: regs_from(g),
                cr0: r.cr0,
                cr3: r.cr3,
                cr4: r.cr4,
                efer: r.efer,
                segs: [(0, 0, 0); 5],
            };
            if !xenolith_arch::paging::is_canonical(ctx.regs.rip)
                || ctx.cr0 & CR0_PG == 0
                || ctx.cr4 & CR4_PAE == 0
                || ctx.efer & EFER_LME == 0
            {
                return Err(Errno::EINVAL);
            }
            ctx
        }
        VCPU_HVM_MODE_32B => {
            let r = c.x86_32();
            let g = [
                r.eax, r.ecx, r.edx, r.ebx, r.esp, r.ebp, r.esi, r.edi, r.eip, r.eflags,
            ]
            .map(u64::from);
            if r.pad1 != 0 || r.pad2 != [0; 3] {
                return Err(Errno::EINVAL);
            }
            // cs, ds, ss, es, tr: (base, limit, attributes).
            let mut segs = [
                (r.cs_base, r.cs_limit, r.cs_ar),
                (r.ds_base, r.ds_limit, r.ds_ar),
                (r.ss_base, r.ss_limit, r.ss_ar),
                (r.es_base, r.es_limit, r.es_ar),
                (r.tr_base, r.tr_limit, r.tr_ar),
            ];
            // Present segments get their accessed bit (busy for TR), as Xen sets them.
            for (i, s) in segs.iter_mut().enumerate() {
                if s.2 & (1 << 7) != 0 {
                    s.2 |= if i == 4 { 2 } else { 1 };
                }
            }
            let ctx = StartContext {
                long: false,
                regs: regs_from(g),
                cr0: u64::from(r.cr0),
                cr3: u64::from(r.cr3),
                cr4: u64::from(r.cr4),
                efer: r.efer,
                segs,
            };
            let (cs, ds, ss, es) = (segs[0].2, segs[1].2, segs[2].2, segs[3].2);
            let present = |a: u16| a & (1 << 7) != 0;
            let dpl = |a: u16| (a >> 5) & 3;
            let mut limit = u64::from(segs[0].1);
            if cs & (1 << 11) != 0 {
                limit = (limit << 12) | 0xfff;
            }
            // CS must be a present code segment holding eip; SS's DPL is CS's; data segments
            // are no more privileged than CS.
            if !present(cs)
                || cs & (1 << 3) == 0
                || ctx.regs.rip > limit
                || dpl(ss) != dpl(cs)
                || (present(ds) && dpl(ds) > dpl(cs))
                || (present(es) && dpl(es) > dpl(cs))
                || (ctx.efer & EFER_LMA != 0 && ctx.efer & EFER_LME == 0)
            {
                return Err(Errno::EINVAL);
            }
            ctx
        }
        _ => return Err(Errno::EINVAL),
    };
    // Long mode is active once paging is on with LME (Xen sets LMA itself).
    if ctx.efer & EFER_LME != 0 && ctx.cr0 & CR0_PG != 0 {
        ctx.efer |= EFER_LMA;
    }
    if ctx.cr4 & !CR4_VALID != 0
        || ctx.efer & !EFER_VALID != 0
        || (ctx.cr0 & CR0_PG != 0 && ctx.cr0 & CR0_PE == 0)
    {
        return Err(Errno::EINVAL);
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx64(cr0: u64, cr4: u64, efer: u64, rip: u64) -> [u8; CONTEXT_SIZE] {
        let mut b = [0u8; CONTEXT_SIZE];
        b[0..4].copy_from_slice(&VCPU_HVM_MODE_64B.to_le_bytes());
        let put = |b: &mut [u8; CONTEXT_SIZE], i: usize, v: u64| {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes())
        };
        put(&mut b, 4, 0x8000); // rsp
        put(&mut b, 8, rip);
        put(&mut b, 10, cr0);
        put(&mut b, 11, 0x1000); // cr3
        put(&mut b, 12, cr4);
        put(&mut b, 13, efer);
        b
    }

    #[test]
    fn a_64_bit_context_starts_in_long_mode() {
        let c = parse(&ctx64(0x8000_0011, 0x20, 0x100, 0xffff_ffff_8000_1000)).unwrap();
        assert!(c.long);
        assert_eq!(c.regs.rip, 0xffff_ffff_8000_1000);
        assert_eq!(c.regs.rsp, 0x8000);
        assert_eq!(c.regs.rflags, 2);
        assert_eq!(c.cr3, 0x1000);
        assert_eq!(c.efer, 0x500); // LMA added
    }

    #[test]
    fn refusals_match_xen() {
        let ok = (0x8000_0011, 0x20, 0x100, 0x1000);
        for (cr0, cr4, efer, rip) in [
            (0x11, ok.1, ok.2, ok.3),                  // paging off
            (ok.0, 0, ok.2, ok.3),                     // no PAE
            (ok.0, ok.1, 0, ok.3),                     // no LME
            (ok.0, ok.1, ok.2, 0x0000_8000_0000_0000), // non-canonical rip
            (ok.0, ok.1 | (1 << 13), ok.2, ok.3),      // VMXE
            (ok.0, ok.1, ok.2 | (1 << 12), ok.3),      // SVME
        ] {
            assert_eq!(parse(&ctx64(cr0, cr4, efer, rip)), Err(Errno::EINVAL));
        }
        let mut b = ctx64(ok.0, ok.1, ok.2, ok.3);
        b[4] = 1; // pad
        assert_eq!(parse(&b), Err(Errno::EINVAL));
        b[4] = 0;
        b[0] = 2; // mode
        assert_eq!(parse(&b), Err(Errno::EINVAL));
    }

    #[test]
    fn a_32_bit_context_keeps_its_segments() {
        let mut b = [0u8; CONTEXT_SIZE];
        let r = 8;
        b[r + 32..r + 36].copy_from_slice(&0x1000u32.to_le_bytes()); // eip
        b[r + 40..r + 44].copy_from_slice(&1u32.to_le_bytes()); // cr0: PE
        for i in 0..5 {
            b[r + 84 + 4 * i..r + 88 + 4 * i].copy_from_slice(&0xf_ffffu32.to_le_bytes());
        }
        let attrs: [u16; 5] = [0xc9a, 0xc92, 0xc92, 0xc92, 0x089];
        for (i, a) in attrs.iter().enumerate() {
            b[r + 104 + 2 * i..r + 106 + 2 * i].copy_from_slice(&a.to_le_bytes());
        }
        let c = parse(&b).unwrap();
        assert!(!c.long);
        assert_eq!(c.regs.rip, 0x1000);
        assert_eq!(c.segs[0].2, 0xc9b); // accessed
        assert_eq!(c.segs[4].2, 0x08b); // busy TSS
        // SS with another DPL than CS is refused.
        b[r + 108..r + 110].copy_from_slice(&0xcf2u16.to_le_bytes());
        assert_eq!(parse(&b), Err(Errno::EINVAL));
    }
}
