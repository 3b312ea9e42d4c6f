//! `VCPUOP_initialise` for an HVM vCPU: Xen's `vcpu_hvm_context` (`public/hvm/hvm_vcpu.h`),
//! checked as Xen's `arch_set_info_hvm_guest` checks it, into the back-ends' start state
//! (pure, host-tested).

use xen_abi::errno::Errno;
use xenolith_arch::hvm::{GuestRegs, StartContext};

/// Size of `vcpu_hvm_context_t` (mode, pad, and the larger union member, `vcpu_hvm_x86_32`).
pub const CONTEXT_SIZE: usize = 128;
/// `VCPU_HVM_MODE_32B`.
const VCPU_HVM_MODE_32B: u32 = 0;
/// `VCPU_HVM_MODE_64B`.
const VCPU_HVM_MODE_64B: u32 = 1;

const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// CR4 bits a guest may have: VME..UMIP (0-11), FSGSBASE, PCIDE, OSXSAVE, SMEP, SMAP.
const CR4_VALID: u64 = 0xfff | (1 << 16) | (1 << 17) | (1 << 18) | (1 << 20) | (1 << 21);
/// EFER bits a guest may have: SCE, LME, LMA, NXE.
const EFER_VALID: u64 = 1 | EFER_LME | EFER_LMA | (1 << 11);

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32_at(b, at)) | (u64::from(u32_at(b, at + 4)) << 32)
}

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
    let (mode, pad) = (u32_at(b, 0), u32_at(b, 4));
    if pad != 0 {
        return Err(Errno::EINVAL);
    }
    let r = &b[8..];
    let mut ctx = match mode {
        VCPU_HVM_MODE_64B => {
            let g: [u64; 10] = core::array::from_fn(|i| u64_at(r, 8 * i));
            let ctx = StartContext {
                long: true,
                regs: regs_from(g),
                cr0: u64_at(r, 80),
                cr3: u64_at(r, 88),
                cr4: u64_at(r, 96),
                efer: u64_at(r, 104),
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
            let g: [u64; 10] = core::array::from_fn(|i| u64::from(u32_at(r, 4 * i)));
            let (pad1, pad2) = (
                u32_at(r, 52),
                [u16_at(r, 114), u16_at(r, 116), u16_at(r, 118)],
            );
            if pad1 != 0 || pad2 != [0; 3] {
                return Err(Errno::EINVAL);
            }
            // cs, ds, ss, es, tr: bases at 64, limits at 84, attributes at 104.
            let mut segs: [(u32, u32, u16); 5] = core::array::from_fn(|i| {
                (
                    u32_at(r, 64 + 4 * i),
                    u32_at(r, 84 + 4 * i),
                    u16_at(r, 104 + 2 * i),
                )
            });
            // Present segments get their accessed bit (busy for TR), as Xen sets them.
            for (i, s) in segs.iter_mut().enumerate() {
                if s.2 & (1 << 7) != 0 {
                    s.2 |= if i == 4 { 2 } else { 1 };
                }
            }
            let ctx = StartContext {
                long: false,
                regs: regs_from(g),
                cr0: u64::from(u32_at(r, 40)),
                cr3: u64::from(u32_at(r, 44)),
                cr4: u64::from(u32_at(r, 48)),
                efer: u64_at(r, 56),
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
