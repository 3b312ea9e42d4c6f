//! The hostile suite's user-mode class: privileged instructions from guest *user* mode. A
//! 64-bit PV kernel runs in ring 3 too, so the hypervisor emulates some privileged
//! instructions for it (I/O with a virtual IOPL, CR and MSR accesses); from user mode it must
//! emulate none of them. Each iteration enters user mode with `HYPERVISOR_iret` at one of the
//! slots below with random `rax`, `rcx` and `rdx`; every slot must fault on its privileged
//! instruction (#GP(0), or #GP(0x402) for `int $0x80`, which has no DPL 3 gate) and the
//! hypervisor must bounce that to the kernel's handler. An instruction that completes runs
//! into the `ud2` after it: an isolation break, except for `wbinvd`/`invd`, which Xen emulates
//! from user mode too (see [`SLOTS`]).
//!
//! The handler does not return to user mode: it copies Xen's bounce frame and leaves through
//! `usermode` (the bounce already switched to kernel mode and its page tables, the same L4
//! here).

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};

use xen_abi::arch_x86::{FLAT_KERNEL_CS, FLAT_USER_CS, TrapInfo};
use xen_abi::hypercall as nr;
use xen_abi::physdev::{PHYSDEVOP_set_iobitmap, PHYSDEVOP_set_iopl};
use xen_abi::xen::StartInfo;

use super::Rng;
use crate::hypercall as hc;
use crate::{traps_rt, usermode};

/// The slots: name, and the error code of the #GP it must raise. `wbinvd` and `invd` are
/// exceptions: Xen 4.17 emulates them from PV user mode as from the kernel (a no-op unless the
/// domain may flush caches; `invd` as `wbinvd`), measured with this suite, so they may also
/// complete. Neither changes memory or state another domain can see.
const SLOTS: [(&str, u64); 30] = [
    ("cli", 0),
    ("sti", 0),
    ("hlt", 0),
    ("mov %cr0,%rax", 0),
    ("mov %rax,%cr0", 0),
    ("mov %cr3,%rax", 0),
    ("mov %rax,%cr3", 0),
    ("mov %rax,%cr4", 0),
    ("mov %rax,%cr8", 0),
    ("mov %dr7,%rax", 0),
    ("mov %rax,%dr7", 0),
    ("rdmsr", 0),
    ("wrmsr", 0),
    ("in $0x80,%al", 0),
    ("out %al,$0x80", 0),
    ("in (%dx),%eax", 0),
    ("out %al,(%dx)", 0),
    ("insb", 0),
    ("invlpg (%rax)", 0),
    ("wbinvd", 0),
    ("invd", 0),
    ("clts", 0),
    ("lgdt (%rsp)", 0),
    ("lidt (%rsp)", 0),
    ("lldt %ax", 0),
    ("ltr %ax", 0),
    ("lmsw %ax", 0),
    ("swapgs", 0),
    ("sysretq", 0),
    ("int $0x80", 0x402),
];

/// Bytes between two slots (and two trap stubs).
const SLOT_SIZE: u64 = 16;
/// Bytes of the `mov %rbx,%rdx` that starts each slot: the privileged instruction follows.
const SLOT_SETUP: u64 = 3;

/// One slot: `rdx` from `rbx` (what [`usermode::enter`] can set besides `rax` and `rcx`), the
/// instruction, then `ud2` in case it completes.
macro_rules! slots {
    ($($insn:literal),+ $(,)?) => {
        concat!($(".balign 16\n", "mov %rbx, %rdx\n", $insn, "\n", "ud2\n"),+)
    };
}

global_asm!(
    ".pushsection .text.pvtest_hostile_user, \"ax\"",
    ".balign 16",
    ".global pvtest_hostile_user_slots",
    "pvtest_hostile_user_slots:",
    slots!(
        "cli",
        "sti",
        "hlt",
        "mov %cr0, %rax",
        "mov %rax, %cr0",
        "mov %cr3, %rax",
        "mov %rax, %cr3",
        "mov %rax, %cr4",
        "mov %rax, %cr8",
        "mov %dr7, %rax",
        "mov %rax, %dr7",
        "rdmsr",
        "wrmsr",
        "in $0x80, %al",
        "out %al, $0x80",
        "in (%dx), %eax",
        "out %al, (%dx)",
        "insb",
        "invlpg (%rax)",
        "wbinvd",
        "invd",
        "clts",
        "lgdt (%rsp)",
        "lidt (%rsp)",
        "lldt %ax",
        "ltr %ax",
        "lmsw %ax",
        "swapgs",
        "sysretq",
        "int $0x80",
    ),
    // One stub per exception vector 0-19: pushes the vector and joins the common path.
    ".balign 16",
    ".global pvtest_hostile_user_traps",
    "pvtest_hostile_user_traps:",
    ".set pvtest_hu_vec, 0",
    ".rept 20",
    "    .balign 16",
    "    pushq $pvtest_hu_vec",
    "    jmp 1f",
    "    .set pvtest_hu_vec, pvtest_hu_vec + 1",
    ".endr",
    // Stack: vector, rcx, r11, [error code], rip, cs, rflags, rsp, ss: copy nine words.
    "1:",
    "    lea {frame}(%rip), %rdi",
    "    mov %rsp, %rsi",
    "    mov $9, %ecx",
    "    cld",
    "    rep movsq",
    "    jmp pvtest_user_leave",
    ".popsection",
    frame = sym FRAME,
    options(att_syntax)
);

unsafe extern "C" {
    static pvtest_hostile_user_slots: u8;
    static pvtest_hostile_user_traps: u8;
}

/// The last trap: vector, then Xen's bounce frame (rcx, r11, [error code], rip, cs, ...).
static FRAME: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

/// What the user code did, as the kernel saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub vector: u64,
    pub error_code: Option<u64>,
    /// rip relative to the slot's privileged instruction.
    pub rip_offset: i64,
    /// Whether the frame's cs is the user code selector with RPL 3 (the trap came from user mode).
    pub from_user: bool,
}

/// Per-class totals.
#[derive(Default)]
pub struct Counts {
    /// #GP with the expected error code on the privileged instruction.
    pub gp: u32,
    /// Anything else (another vector or error code, or a trap elsewhere).
    pub other: u32,
    /// `wbinvd`/`invd` completed (emulated as Xen does, see [`SLOTS`]).
    pub noop: u32,
    /// Any other instruction completed (the `ud2` after it trapped): an isolation break.
    pub completed: u32,
    /// Bit `k`: slot `k`'s instruction completed at least once.
    pub completed_slots: u64,
    /// The first unexpected outcome, with its slot.
    pub first_bad: Option<(&'static str, Outcome)>,
}

/// Drops any I/O privilege the random calls may have granted (IOPL, an I/O bitmap), so that
/// every I/O instruction from user mode must fault. Their rcs do not matter.
fn drop_io_privilege() {
    let mut iopl: u32 = 0;
    // SAFETY: set_iopl reads one u32.
    unsafe {
        hc::hypercall3(
            nr::physdev_op,
            u64::from(PHYSDEVOP_set_iopl),
            (&raw mut iopl) as u64,
            0,
        )
    };
    let mut iobitmap = [0u64; 2];
    // SAFETY: set_iobitmap reads a NULL handle and zero ports.
    unsafe {
        hc::hypercall3(
            nr::physdev_op,
            u64::from(PHYSDEVOP_set_iobitmap),
            iobitmap.as_mut_ptr() as u64,
            0,
        )
    };
}

/// Routes exception vectors 0-19 (not 2, 9, 15) to this module's stubs.
fn install_traps() -> i64 {
    let base = (&raw const pvtest_hostile_user_traps) as u64;
    let mut table = [TrapInfo::default(); 18];
    for (slot, vector) in table
        .iter_mut()
        .zip((0..20u8).filter(|v| ![2, 9, 15].contains(v)))
    {
        *slot = TrapInfo {
            vector,
            flags: 0,
            cs: FLAT_KERNEL_CS,
            _pad0: 0,
            address: base + SLOT_SIZE * u64::from(vector),
        };
    }
    // SAFETY: every stub takes Xen's bounce frame and leaves through `pvtest_user_leave`; the
    // table is installed only while the class runs (`teardown` restores the defaults), and it
    // ends with a zero entry.
    unsafe { hc::set_trap_table(&table) }
}

/// Sets up user mode ([`usermode::setup`]) and the trap stubs. Returns the failing step.
pub fn setup(si: &StartInfo) -> Result<(), (&'static str, i64)> {
    drop_io_privilege();
    usermode::setup(si)?;
    let rc = install_traps();
    if rc != 0 {
        return Err(("set_trap_table", rc));
    }
    Ok(())
}

/// Puts the default trap handlers back and drops the user page tables.
pub fn teardown() -> i64 {
    traps_rt::restore_default_traps();
    usermode::clear_user_baseptr()
}

/// Runs slot `k` in user mode with the given registers.
fn run_slot(k: usize, rax: u64, rcx: u64, rdx: u64) -> Outcome {
    let slot = (&raw const pvtest_hostile_user_slots) as u64 + SLOT_SIZE * k as u64;
    for w in &FRAME {
        w.store(0, Ordering::Relaxed);
    }
    // SAFETY: user mode is set up (`setup`); the slot's only way back is a trap, whose stub
    // (installed by `setup`) ends with `jmp pvtest_user_leave`.
    unsafe { usermode::enter(slot, rax, rcx, rdx) };
    let w = |i: usize| FRAME[i].load(Ordering::Relaxed);
    let vector = w(0);
    let e = usize::from(matches!(vector, 8 | 10..=14 | 17));
    let rip = w(3 + e);
    let cs = w(4 + e) & 0xffff;
    Outcome {
        vector,
        error_code: (e == 1).then(|| w(3)),
        rip_offset: rip.wrapping_sub(slot + SLOT_SETUP) as i64,
        from_user: cs == u64::from(FLAT_USER_CS),
    }
}

/// Whether slot `k` may complete (see [`SLOTS`]).
fn may_complete(k: usize) -> bool {
    matches!(SLOTS[k].0, "wbinvd" | "invd")
}

/// The names of the slots whose bits are set in `mask`, comma-separated.
pub fn names(mask: u64) -> impl core::fmt::Display {
    struct Names(u64);
    impl core::fmt::Display for Names {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let mut first = true;
            for (k, (name, _)) in SLOTS.iter().enumerate() {
                if self.0 & (1 << k) != 0 {
                    f.write_str(if first { "" } else { "," })?;
                    f.write_str(name)?;
                    first = false;
                }
            }
            if first {
                f.write_str("none")?;
            }
            Ok(())
        }
    }
    Names(mask)
}

/// `iters` privileged instructions from user mode.
pub fn run(rng: &mut Rng, iters: u64) -> Counts {
    let mut c = Counts::default();
    for _ in 0..iters {
        let k = rng.below(SLOTS.len() as u64) as usize;
        let (rax, rcx, rdx) = (rng.next(), rng.next(), rng.next());
        let o = run_slot(k, rax, rcx, rdx);
        let want_ec = SLOTS[k].1;
        if o.vector == 13 && o.error_code == Some(want_ec) && o.rip_offset == 0 && o.from_user {
            c.gp += 1;
            continue;
        }
        if o.vector == 6 && o.rip_offset > 0 && o.from_user && may_complete(k) {
            c.noop += 1;
            continue;
        }
        if o.vector == 6 && o.rip_offset > 0 {
            c.completed += 1;
            c.completed_slots |= 1 << k;
        } else {
            c.other += 1;
        }
        c.first_bad.get_or_insert((SLOTS[k].0, o));
    }
    c
}
