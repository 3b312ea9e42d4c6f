//! Delivering exceptions, interrupts and callbacks to a 64-bit PV guest kernel: the bounce
//! frame of Xen's `create_bounce_frame` (`xen/arch/x86/x86_64/entry.S`), and the reverse
//! operation, `HYPERVISOR_iret` (`do_iret`, `xen/arch/x86/pv/iret.c`).
//!
//! Both are pure functions over register state so they can be tested on the host; the caller
//! does the guest-memory accesses and the kernel/user mode switch.

use xenolith_arch::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
use xenolith_arch::trap::TrapFrame;

/// The 64-bit PV guest kernel's code selector (`FLAT_KERNEL_CS64`).
pub const FLAT_KERNEL_CS: u64 = 0xe033;
/// The 64-bit PV guest kernel's stack selector (`FLAT_KERNEL_SS64`).
pub const FLAT_KERNEL_SS: u64 = 0xe02b;
/// `TRAP_syscall`: marks a frame whose rcx/r11 belong to the guest bounce frame.
pub const TRAP_SYSCALL: u32 = 256;
/// `VGCF_in_syscall` in `iret_context.flags`.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

const EFLAGS_TF: u64 = 1 << 8;
const EFLAGS_IF: u64 = 1 << 9;
const EFLAGS_IOPL: u64 = 3 << 12;
const EFLAGS_NT: u64 = 1 << 14;
const EFLAGS_RF: u64 = 1 << 16;
const EFLAGS_VM: u64 = 1 << 17;
const EFLAGS_AC: u64 = 1 << 18;

/// What to deliver (Xen's `struct trap_bounce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapBounce {
    /// Guest handler address.
    pub eip: u64,
    /// Error code to push, for exceptions that have one (`TBF_EXCEPTION_ERRCODE`).
    pub error_code: Option<u32>,
    /// Mask events on delivery (`TBF_INTERRUPT`: an interrupt gate, or an event upcall).
    pub interrupt: bool,
}

/// The vCPU state the bounce reads.
#[derive(Clone, Copy, Debug)]
pub struct BounceState {
    /// The vCPU is in guest kernel mode.
    pub kernel_mode: bool,
    /// Kernel stack registered with `stack_switch` (used when coming from user mode).
    pub kernel_sp: u64,
    /// `vcpu_info.evtchn_upcall_mask` before delivery.
    pub upcall_mask: u8,
    /// Virtual IOPL to show in RFLAGS, when `VMASST_TYPE_architectural_iopl` is on.
    pub architectural_iopl: Option<u64>,
}

/// The most words a bounce frame has (with an error code).
pub const MAX_FRAME_WORDS: usize = 8;

/// A bounce frame ready to be written to the guest kernel stack. Built in place, without the
/// heap: the trap, event and syscall paths allocate nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BounceFrame {
    /// Guest address of the lowest word; the new guest RSP.
    pub rsp: u64,
    /// The frame's words (the first `len`; the rest are zero).
    buf: [u64; MAX_FRAME_WORDS],
    /// Number of words: 7, or 8 with an error code.
    len: usize,
    /// `evtchn_upcall_mask` after delivery.
    pub upcall_mask: u8,
    /// The caller must switch the vCPU to kernel mode (page tables and GS) first.
    pub to_kernel_mode: bool,
}

impl BounceFrame {
    /// Words from `rsp` upward: RCX, R11, [error code,] RIP, CS|mask<<32, RFLAGS, RSP, SS.
    pub fn words(&self) -> &[u64] {
        &self.buf[..self.len]
    }

    /// The frame as the guest's stack holds it (little-endian words from `rsp` upward), and its
    /// length in bytes: the caller copies `bytes[..len]` to the guest in one go.
    pub fn to_bytes(&self) -> ([u8; MAX_FRAME_WORDS * 8], usize) {
        let mut bytes = [0u8; MAX_FRAME_WORDS * 8];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(self.words()) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        (bytes, self.len * 8)
    }
}

/// Why a bounce is impossible (Xen crashes the domain in both cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BounceError {
    /// The guest stack pointer lies in the hypervisor's range.
    BadStack(u64),
    /// No handler registered (`eip == 0`).
    NoHandler,
}

/// Builds the bounce frame and updates `regs` so that resuming the guest enters the handler
/// (Xen's `create_bounce_frame`).
pub fn bounce(
    regs: &mut TrapFrame,
    st: &BounceState,
    tb: &TrapBounce,
) -> Result<BounceFrame, BounceError> {
    let mut cs = regs.cs;
    let sp = if st.kernel_mode {
        cs &= !3; // tell the guest it interrupted kernel context
        regs.rsp
    } else {
        st.kernel_sp
    };
    let sp = sp & !0xf;
    // Xen's check: the frame may not start inside the hypervisor range (plus 8 words below
    // its end, the size of the largest frame).
    if sp > HYPERVISOR_VIRT_START && sp < HYPERVISOR_VIRT_END + 8 * 8 {
        return Err(BounceError::BadStack(sp));
    }
    if tb.eip == 0 {
        return Err(BounceError::NoHandler);
    }
    let saved_mask = st.upcall_mask;
    let mut rflags = regs.rflags & !(EFLAGS_IF | EFLAGS_IOPL);
    if saved_mask == 0 {
        rflags |= EFLAGS_IF;
    }
    if let Some(iopl) = st.architectural_iopl {
        rflags |= iopl & EFLAGS_IOPL;
    }
    let mut buf = [0u64; MAX_FRAME_WORDS];
    buf[0] = regs.rcx;
    buf[1] = regs.r11;
    let mut len = 2;
    if let Some(ec) = tb.error_code {
        buf[len] = u64::from(ec);
        len += 1;
    }
    for w in [
        regs.rip,
        (cs & 0xffff) | (u64::from(saved_mask) << 32),
        rflags,
        regs.rsp,
        regs.ss,
    ] {
        buf[len] = w;
        len += 1;
    }
    let rsp = sp - 8 * len as u64;

    regs.entry_vector |= TRAP_SYSCALL;
    regs.rflags &= !(EFLAGS_AC | EFLAGS_VM | EFLAGS_RF | EFLAGS_NT | EFLAGS_TF);
    regs.ss = FLAT_KERNEL_SS;
    regs.rsp = rsp;
    regs.cs = FLAT_KERNEL_CS;
    regs.rip = tb.eip;
    Ok(BounceFrame {
        rsp,
        buf,
        len,
        upcall_mask: if tb.interrupt { 1 } else { saved_mask },
        to_kernel_mode: !st.kernel_mode,
    })
}

/// `struct iret_context` as the guest pushes it for `HYPERVISOR_iret`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IretContext {
    /// Restored rax (the hypercall's return value).
    pub rax: u64,
    /// Restored r11 (unless `VGCF_in_syscall`).
    pub r11: u64,
    /// Restored rcx (unless `VGCF_in_syscall`).
    pub rcx: u64,
    /// `VGCF_*` flags.
    pub flags: u64,
    /// Return address.
    pub rip: u64,
    /// Return code selector.
    pub cs: u64,
    /// Return flags (IF gives the new upcall mask).
    pub rflags: u64,
    /// Return stack pointer.
    pub rsp: u64,
    /// Return stack selector.
    pub ss: u64,
}

impl IretContext {
    /// Decodes the nine words the guest pushed.
    pub fn from_words(w: &[u64; 9]) -> Self {
        Self {
            rax: w[0],
            r11: w[1],
            rcx: w[2],
            flags: w[3],
            rip: w[4],
            cs: w[5],
            rflags: w[6],
            rsp: w[7],
            ss: w[8],
        }
    }
}

/// What `HYPERVISOR_iret` does to the vCPU besides the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IretEffect {
    /// Return to guest user mode: switch page tables and GS.
    pub to_user_mode: bool,
    /// New `evtchn_upcall_mask`.
    pub upcall_mask: u8,
    /// New virtual IOPL, when `architectural_iopl` is on.
    pub iopl: Option<u64>,
}

/// Applies an `iret_context` to the registers (Xen's `do_iret`); `regs.rax` gets the saved rax.
pub fn iret(regs: &mut TrapFrame, ctx: &IretContext, architectural_iopl: bool) -> IretEffect {
    let to_user_mode = ctx.cs & 3 == 3;
    regs.rip = ctx.rip;
    regs.cs = ctx.cs | 3;
    regs.rflags = (ctx.rflags & !(EFLAGS_IOPL | EFLAGS_VM)) | EFLAGS_IF;
    regs.rsp = ctx.rsp;
    regs.ss = ctx.ss | 3;
    if ctx.flags & VGCF_IN_SYSCALL == 0 {
        regs.entry_vector &= !TRAP_SYSCALL;
        regs.r11 = ctx.r11;
        regs.rcx = ctx.rcx;
    }
    regs.rax = ctx.rax;
    IretEffect {
        to_user_mode,
        upcall_mask: u8::from(ctx.rflags & EFLAGS_IF == 0),
        iopl: architectural_iopl.then_some(ctx.rflags & EFLAGS_IOPL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> TrapFrame {
        TrapFrame {
            rip: 0xffff_ffff_8100_1234,
            cs: 0xe033,
            rflags: 0x202 | EFLAGS_TF | EFLAGS_AC,
            rsp: 0xffff_c900_0000_3f08,
            ss: 0xe02b,
            rcx: 0x1111,
            r11: 0x2222,
            ..TrapFrame::default()
        }
    }

    #[test]
    fn kernel_mode_bounce_with_error_code() {
        let mut r = regs();
        let st = BounceState {
            kernel_mode: true,
            kernel_sp: 0,
            upcall_mask: 0,
            architectural_iopl: None,
        };
        let tb = TrapBounce {
            eip: 0xffff_ffff_8100_8000,
            error_code: Some(2),
            interrupt: true,
        };
        let f = bounce(&mut r, &st, &tb).unwrap();
        // 16-byte aligned base, 8 words below it.
        assert_eq!(f.rsp, 0xffff_c900_0000_3f00 - 8 * 8);
        assert_eq!(f.words()[0], 0x1111);
        assert_eq!(f.words()[1], 0x2222);
        assert_eq!(f.words()[2], 2);
        assert_eq!(f.words()[3], 0xffff_ffff_8100_1234);
        assert_eq!(
            f.words()[4],
            0xe030,
            "kernel context: RPL cleared, no saved mask"
        );
        assert_eq!(f.words()[5] & EFLAGS_IF, EFLAGS_IF, "events were unmasked");
        assert_eq!(f.words()[6], 0xffff_c900_0000_3f08);
        assert_eq!(f.words()[7], 0xe02b);
        assert_eq!(f.words().len(), 8);
        let (bytes, len) = f.to_bytes();
        assert_eq!(len, 64);
        assert_eq!(bytes[..8], 0x1111u64.to_le_bytes());
        assert_eq!(bytes[56..64], 0xe02bu64.to_le_bytes());
        assert_eq!(f.upcall_mask, 1, "interrupt gates mask events");
        assert!(!f.to_kernel_mode);
        assert_eq!(r.rip, 0xffff_ffff_8100_8000);
        assert_eq!(r.rsp, f.rsp);
        assert_eq!((r.cs, r.ss), (FLAT_KERNEL_CS, FLAT_KERNEL_SS));
        assert_eq!(r.rflags & (EFLAGS_TF | EFLAGS_AC), 0);
        assert_ne!(r.entry_vector & TRAP_SYSCALL, 0);
    }

    #[test]
    fn user_mode_bounce_uses_kernel_stack_and_saves_mask() {
        let mut r = regs();
        r.rsp = 0x7fff_ffff_e000;
        let st = BounceState {
            kernel_mode: false,
            kernel_sp: 0xffff_c900_0001_0008,
            upcall_mask: 1,
            architectural_iopl: Some(3 << 12),
        };
        let tb = TrapBounce {
            eip: 0xffff_ffff_8100_9000,
            error_code: None,
            interrupt: false,
        };
        let f = bounce(&mut r, &st, &tb).unwrap();
        assert!(f.to_kernel_mode);
        assert_eq!(f.rsp, 0xffff_c900_0001_0000 - 7 * 8);
        assert_eq!(f.words().len(), 7);
        let (bytes, len) = f.to_bytes();
        assert_eq!(len, 56);
        assert_eq!(bytes[48..56], 0xe02bu64.to_le_bytes());
        assert!(bytes[56..].iter().all(|&b| b == 0));
        assert_eq!(
            f.words()[3],
            0xe033 | (1 << 32),
            "user CS kept, saved mask in bits 32-39"
        );
        assert_eq!(f.words()[4] & EFLAGS_IF, 0, "events were masked");
        assert_eq!(f.words()[4] & EFLAGS_IOPL, 3 << 12);
        assert_eq!(f.words()[5], 0x7fff_ffff_e000);
        assert_eq!(f.upcall_mask, 1);
    }

    #[test]
    fn refuses_hypervisor_stack_and_missing_handler() {
        let mut r = regs();
        r.rsp = 0xffff_8300_0000_1000;
        let st = BounceState {
            kernel_mode: true,
            kernel_sp: 0,
            upcall_mask: 0,
            architectural_iopl: None,
        };
        let tb = TrapBounce {
            eip: 1,
            error_code: None,
            interrupt: false,
        };
        assert_eq!(
            bounce(&mut r, &st, &tb),
            Err(BounceError::BadStack(0xffff_8300_0000_1000))
        );
        let mut r = regs();
        let tb = TrapBounce { eip: 0, ..tb };
        assert_eq!(bounce(&mut r, &st, &tb), Err(BounceError::NoHandler));
    }

    #[test]
    fn iret_restores_and_reports_mode() {
        let mut r = TrapFrame {
            entry_vector: TRAP_SYSCALL,
            ..TrapFrame::default()
        };
        let ctx = IretContext {
            rax: 7,
            r11: 0x246,
            rcx: 0x4000,
            flags: 0,
            rip: 0x40_1000,
            cs: 0xe033,
            rflags: 0x246 | EFLAGS_IOPL,
            rsp: 0x7fff_0000,
            ss: 0xe02b,
        };
        let e = iret(&mut r, &ctx, false);
        assert!(e.to_user_mode);
        assert_eq!(e.upcall_mask, 0);
        assert_eq!(e.iopl, None);
        assert_eq!(
            (r.rip, r.rsp, r.rax, r.rcx, r.r11),
            (0x40_1000, 0x7fff_0000, 7, 0x4000, 0x246)
        );
        assert_eq!(
            r.rflags & EFLAGS_IOPL,
            0,
            "IOPL never reaches the real flags"
        );
        assert_eq!(r.entry_vector & TRAP_SYSCALL, 0);
        // In-syscall returns keep rcx/r11 and mask events when IF was clear.
        let mut r = TrapFrame {
            rcx: 1,
            r11: 2,
            ..TrapFrame::default()
        };
        let ctx = IretContext {
            flags: VGCF_IN_SYSCALL,
            rflags: 0x2,
            cs: 0xe030,
            ..ctx
        };
        let e = iret(&mut r, &ctx, true);
        assert!(!e.to_user_mode);
        assert_eq!(e.upcall_mask, 1);
        assert_eq!(e.iopl, Some(0));
        assert_eq!((r.rcx, r.r11, r.cs), (1, 2, 0xe033));
    }
}
