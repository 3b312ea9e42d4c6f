//! Guest-side exception runtime for the `traps` and `emul` suites: one entry stub per vector
//! (256 of them, so any vector can be routed through `HYPERVISOR_set_trap_table`), a handler
//! that records Xen's bounce frame and resumes the interrupted code with `HYPERVISOR_iret`, and
//! [`probe!`], which runs a few instructions that may fault.
//!
//! Xen's 64-bit PV bounce frame, as the handler finds it on the guest kernel stack (lowest
//! address first): `rcx, r11, [error code], rip, cs, rflags, rsp, ss`. Bits 32-39 of the `cs`
//! word hold the upcall mask saved on entry and `rflags.IF` is its inverse. The frame sits
//! below the interrupted `rsp` rounded down to 16 bytes.
//!
//! The return path builds Xen's `struct iret_context` (`rax, r11, rcx, flags, rip, cs, rflags,
//! rsp, ss`, lowest address first) on top of the frame's last five words, exactly as Linux's
//! `xen_iret` + hypercall-page stub do (`push $0` for `flags`, then `push rcx; push r11;
//! push rax`), and makes `HYPERVISOR_iret`. With `flags` not containing `VGCF_in_syscall` Xen
//! restores `rcx` and `r11` from the context, restores the upcall mask from `rflags.IF`, and
//! returns the context's `rax`.
//!
//! A trap that arrives while no probe is armed prints a `PVTEST FATAL` line and crashes the
//! domain, like the default handlers in `entry.rs`.

use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicU64, Ordering};

use xen_abi::arch_x86::{FLAT_KERNEL_CS, TrapInfo};
use xen_abi::hypercall as nr;
use xen_abi::xen::{StartInfo, UVMF_INVLPG, UVMF_LOCAL, VcpuInfo};

use crate::console::Line;
use crate::hypercall as hc;
use crate::mm::{self, _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, PAGE_SIZE};

/// Bytes between two entry stubs.
const STUB_SIZE: u64 = 16;

/// `X86_EFLAGS_IF`.
pub const RFLAGS_IF: u64 = 1 << 9;
/// The "system" bits of rflags worth reporting: TF, IF, DF, IOPL, NT, VM, AC (not RF, whose
/// value in an exception frame is a property of the CPU, not of the hypervisor).
pub const RFLAGS_SYSTEM: u64 = 0x100 | 0x200 | 0x400 | 0x3000 | 0x4000 | 0x2_0000 | 0x4_0000;

/// The `_PAGE_DIRTY` PTE bit.
const PAGE_DIRTY: u64 = 1 << 6;

global_asm!(
    ".pushsection .text.pvtest_rt, \"ax\"",
    // One 16-byte stub per vector: pushes the vector and joins the common path.
    ".balign 16",
    ".global pvtest_rt_stubs",
    "pvtest_rt_stubs:",
    ".set pvtest_rt_vec, 0",
    ".rept 256",
    "    .balign 16",
    "    pushq $pvtest_rt_vec",
    "    jmp pvtest_rt_common",
    "    .set pvtest_rt_vec, pvtest_rt_vec + 1",
    ".endr",
    // Stack: vector, rcx, r11, [error code], rip, cs, rflags, rsp, ss.
    "pvtest_rt_common:",
    "    push %rax",
    "    push %rbx",
    "    push %rcx",
    "    push %rdx",
    "    push %rsi",
    "    push %rdi",
    "    push %rbp",
    "    push %r8",
    "    push %r9",
    "    push %r10",
    "    push %r11",
    "    push %r12",
    "    push %r13",
    "    push %r14",
    "    push %r15",
    "    cld",
    "    mov %rsp, %rdi",
    "    mov %rsp, %rbx",
    "    and $-16, %rsp",
    "    call {dispatch}",
    "    mov %rbx, %rsp",
    "    pop %r15",
    "    pop %r14",
    "    pop %r13",
    "    pop %r12",
    "    pop %r11",
    "    pop %r10",
    "    pop %r9",
    "    pop %r8",
    "    pop %rbp",
    "    pop %rdi",
    "    pop %rsi",
    "    pop %rdx",
    "    pop %rcx",
    "    pop %rbx",
    "    pop %rax",
    // The dispatcher replaced the vector with the error code's size (0 or 8). rcx and r11 come
    // from the (possibly edited) bounce frame.
    "    mov 8(%rsp), %rcx",
    "    mov 16(%rsp), %r11",
    "    add (%rsp), %rsp",
    "    add $24, %rsp",
    // Now at rip, cs, rflags, rsp, ss: build the iret_context and make HYPERVISOR_iret.
    "    pushq $0",
    "    push %rcx",
    "    push %r11",
    "    push %rax",
    "    mov ${iret}, %eax",
    "    syscall",
    "    ud2",
    ".popsection",
    dispatch = sym pvtest_rt_dispatch,
    iret = const nr::iret,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first entry stub (vector `n`'s is `STUB_SIZE * n` bytes further).
    static pvtest_rt_stubs: u8;
}

/// Where the next trap resumes (the end of the armed probe); 0 when no probe is armed. Written
/// by [`probe!`], consumed (zeroed) by the handler.
#[unsafe(no_mangle)]
pub static pvtest_rt_resume: AtomicU64 = AtomicU64::new(0);
/// The first instruction of the armed probe.
#[unsafe(no_mangle)]
pub static pvtest_rt_fault_rip: AtomicU64 = AtomicU64::new(0);
/// `rsp` just before the armed probe's first instruction.
#[unsafe(no_mangle)]
pub static pvtest_rt_probe_rsp: AtomicU64 = AtomicU64::new(0);

/// Runs instructions that may fault, resuming after them if they do.
///
/// `probe!([pre...], [insn...], [post...], operands...)`: the `pre` templates run first, then
/// the probe is armed and the `insn` templates run (a trap there is recorded and the code
/// resumes after the last `insn`, with every register as it was at the trap unless the
/// [`Action`] says otherwise), then the `post` templates run (on both paths). Operands follow
/// `asm!` rules (named ones before explicit registers) and end with a comma; the block uses
/// AT&T syntax and may touch memory. Use [`arm`] before and [`take`] after.
macro_rules! probe {
    ([$($pre:expr),* $(,)?], [$($insn:expr),+ $(,)?], [$($post:expr),* $(,)?], $($ops:tt)*) => {
        core::arch::asm!(
            $($pre,)*
            "lea 72f(%rip), {rt_tmp}",
            "mov {rt_tmp}, pvtest_rt_resume(%rip)",
            "lea 71f(%rip), {rt_tmp}",
            "mov {rt_tmp}, pvtest_rt_fault_rip(%rip)",
            "mov %rsp, pvtest_rt_probe_rsp(%rip)",
            "71:",
            $($insn,)+
            "72:",
            "movq $0, pvtest_rt_resume(%rip)",
            $($post,)*
            rt_tmp = out(reg) _,
            $($ops)*
            options(att_syntax)
        )
    };
}
pub(crate) use probe;

/// A cell shared by the suites and the trap handler (one vCPU; the handler runs between two
/// instructions of the probe, never concurrently with a Rust access).
struct Shared<T>(UnsafeCell<T>);

// SAFETY: there is a single vCPU and the handler only runs inside probes, while no Rust code
// holds a reference into the cell (all accesses are whole-value volatile copies).
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    const fn new(v: T) -> Self {
        Shared(UnsafeCell::new(v))
    }

    fn get(&self) -> T {
        // SAFETY: see the Sync impl: no reference into the cell is ever live.
        unsafe { self.0.get().read_volatile() }
    }

    fn set(&self, v: T) {
        // SAFETY: as for get.
        unsafe { self.0.get().write_volatile(v) }
    }
}

/// What the handler saw for one trap.
#[derive(Clone, Copy, Default)]
pub struct Trap {
    /// The stub's vector.
    pub vector: u64,
    /// The error code, for the vectors that have one.
    pub error_code: Option<u64>,
    /// Frame words.
    pub rcx: u64,
    pub r11: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    /// Address of the frame's lowest word (`rcx`).
    pub frame_addr: u64,
    /// `vcpu_info.evtchn_upcall_mask` on entry (0xff when shared_info is not mapped).
    pub mask_on_entry: u8,
    /// `vcpu_info.arch.cr2` on entry.
    pub cr2_on_entry: u64,
    /// The probe's first instruction, its end and `rsp` (copied when the trap arrived).
    pub fault_rip: u64,
    pub next_rip: u64,
    pub probe_rsp: u64,
    /// Traps recorded since [`arm`] (a probe takes at most one: a second trap has no probe
    /// armed and is fatal).
    pub count: u32,
}

impl Trap {
    /// The upcall mask Xen saved in bits 32-39 of the `cs` word.
    pub fn saved_mask(&self) -> u64 {
        (self.cs >> 32) & 0xff
    }

    /// Where `rip` points: the probe's first instruction, its end, or elsewhere.
    pub fn rip_kind(&self) -> &'static str {
        if self.rip == self.fault_rip {
            "insn"
        } else if self.rip == self.next_rip {
            "next"
        } else {
            "other"
        }
    }

    /// Whether the frame is where Xen puts it (just below the interrupted `rsp` rounded down to
    /// 16 bytes) and records that `rsp` and the flat kernel `ss`.
    pub fn frame_ok(&self) -> bool {
        let words = 2 + u64::from(self.error_code.is_some()) + 5;
        self.frame_addr + 8 * words == self.probe_rsp & !15
            && self.rsp == self.probe_rsp
            && self.ss == u64::from(xen_abi::arch_x86::FLAT_KERNEL_SS)
    }

    /// `vec=.. ec=.. rip=.. cs=.. smask=.. fl=.. frame=..`: the deterministic summary (`smask`:
    /// the saved upcall mask; `fl`: the frame's [`RFLAGS_SYSTEM`] bits).
    pub fn summary(&self) -> Summary<'_> {
        Summary(self)
    }
}

/// See [`Trap::summary`].
pub struct Summary<'a>(&'a Trap);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(f, "vec={}", t.vector)?;
        match t.error_code {
            Some(ec) => write!(f, " ec={ec:#x}")?,
            None => f.write_str(" ec=none")?,
        }
        write!(
            f,
            " rip={} cs={:#x} smask={} fl={:#x} frame={}",
            t.rip_kind(),
            t.cs & 0xffff,
            t.saved_mask(),
            t.rflags & RFLAGS_SYSTEM,
            if t.frame_ok() { "ok" } else { "bad" }
        )?;
        Ok(())
    }
}

/// What the handler changes in the frame before returning (one-shot; reset by [`arm`]).
#[derive(Clone, Copy, Default)]
pub struct Action {
    /// New `rcx` and `r11` for the iret context.
    pub rcx_r11: Option<(u64, u64)>,
    /// New `rax` for the iret context.
    pub rax: Option<u64>,
    /// Bits to set in the returned `rflags`.
    pub rflags_set: u64,
    /// Bits to clear in the returned `rflags`.
    pub rflags_clear: u64,
}

static LAST: Shared<Trap> = Shared::new(Trap {
    vector: 0,
    error_code: None,
    rcx: 0,
    r11: 0,
    rip: 0,
    cs: 0,
    rflags: 0,
    rsp: 0,
    ss: 0,
    frame_addr: 0,
    mask_on_entry: 0,
    cr2_on_entry: 0,
    fault_rip: 0,
    next_rip: 0,
    probe_rsp: 0,
    count: 0,
});
static ACTION: Shared<Action> = Shared::new(Action {
    rcx_r11: None,
    rax: None,
    rflags_set: 0,
    rflags_clear: 0,
});

/// Forgets the last trap and sets the handler's action for the next probe.
pub fn arm(action: Action) {
    LAST.set(Trap::default());
    ACTION.set(action);
}

/// The trap the last probe took, if any.
pub fn take() -> Option<Trap> {
    let t = LAST.get();
    (t.count > 0).then_some(t)
}

/// Whether Xen pushes an error code for exception `vector` (only exceptions are routed to the
/// error-code vectors by the checks; `int n` never is).
fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17)
}

/// The common handler: records the frame, edits it per [`Action`] and points `rip` at the end
/// of the probe. `saved` is the stack after the GPR pushes: r15..rax (15 words), the vector
/// (replaced by the error code size for the return path), then the bounce frame.
extern "C" fn pvtest_rt_dispatch(saved: *mut u64) {
    // SAFETY: `saved` points at the register save area and Xen's bounce frame on the current
    // stack, 16 + 8 words (9 with an error code) long.
    let word = |i: usize| unsafe { saved.add(i).read_volatile() };
    // SAFETY: as above.
    let set = |i: usize, v: u64| unsafe { saved.add(i).write_volatile(v) };
    let vector = word(15);
    let err = has_error_code(vector);
    let e = usize::from(err);
    let resume = pvtest_rt_resume.load(Ordering::Relaxed);
    let prev = LAST.get();
    let trap = Trap {
        vector,
        error_code: err.then(|| word(18)),
        rcx: word(16),
        r11: word(17),
        rip: word(18 + e),
        cs: word(19 + e),
        rflags: word(20 + e),
        rsp: word(21 + e),
        ss: word(22 + e),
        frame_addr: saved as u64 + 16 * 8,
        mask_on_entry: shinfo_vcpu0().map_or(0xff, |v| {
            // SAFETY: the shared_info mapping is live while SHINFO_VA is set.
            unsafe { (&raw const (*v).evtchn_upcall_mask).read_volatile() }
        }),
        cr2_on_entry: shinfo_vcpu0().map_or(0, |v| {
            // SAFETY: as above.
            unsafe { (&raw const (*v).arch.cr2).read_volatile() }
        }),
        fault_rip: pvtest_rt_fault_rip.load(Ordering::Relaxed),
        next_rip: resume,
        probe_rsp: pvtest_rt_probe_rsp.load(Ordering::Relaxed),
        count: prev.count + 1,
    };
    if resume == 0 {
        fatal(&trap);
    }
    pvtest_rt_resume.store(0, Ordering::Relaxed);
    LAST.set(trap);
    let action = ACTION.get();
    ACTION.set(Action::default());
    if let Some((rcx, r11)) = action.rcx_r11 {
        set(16, rcx);
        set(17, r11);
    }
    if let Some(rax) = action.rax {
        set(14, rax);
    }
    set(
        20 + e,
        (trap.rflags | action.rflags_set) & !action.rflags_clear,
    );
    set(18 + e, resume);
    set(15, 8 * e as u64);
}

/// Reports an unexpected trap and crashes the domain.
fn fatal(t: &Trap) -> ! {
    let mut line = Line::new();
    let _ = write!(line, "PVTEST FATAL trap vector={}", t.vector);
    if let Some(ec) = t.error_code {
        let _ = write!(line, " error_code={ec:#x}");
    }
    let _ = write!(line, " rip={:#x} rsp={:#x} (traps_rt)", t.rip, t.rsp);
    line.emit();
    hc::crash()
}

/// The entry stub of `vector`.
pub fn stub(vector: u8) -> u64 {
    (&raw const pvtest_rt_stubs) as u64 + STUB_SIZE * u64::from(vector)
}

/// Routes `vector` to its stub with `dpl` (bits 0-1 of the flags) and, if `mask_events`, the
/// "interrupt gate" flag (bit 2: Xen sets the upcall mask on entry).
pub fn set_gate(vector: u8, dpl: u8, mask_events: bool) -> i64 {
    let table = [
        TrapInfo {
            vector,
            flags: (dpl & 3) | if mask_events { 4 } else { 0 },
            cs: FLAT_KERNEL_CS,
            _pad0: 0,
            address: stub(vector),
        },
        TrapInfo::default(),
    ];
    // SAFETY: the address is this vector's stub, which takes any bounce frame.
    unsafe { hc::set_trap_table(&table) }
}

/// Routes the exception vectors 0-19 (not 2, NMI, nor the reserved 9 and 15) to the stubs,
/// DPL 0 except #BP (3), no event masking. Returns the first non-zero rc.
pub fn install_exceptions() -> i64 {
    for vector in (0..=19u8).filter(|v| ![2, 9, 15].contains(v)) {
        let rc = set_gate(vector, if vector == 3 { 3 } else { 0 }, false);
        if rc != 0 {
            return rc;
        }
    }
    0
}

/// `HYPERVISOR_set_trap_table(NULL)`: clears the whole virtual IDT.
pub fn clear_trap_table() -> i64 {
    // SAFETY: a NULL table only clears Xen's copy; no handler runs until one is installed.
    unsafe { hc::hypercall3(nr::set_trap_table, 0, 0, 0) }
}

/// Clears the virtual IDT and puts `entry.rs`'s default (fatal) handlers back.
pub fn restore_default_traps() {
    clear_trap_table();
    crate::entry::install_trap_table();
}

// ---------------------------------------------------------------------------------------------
// Pages whose mappings the checks change.

/// A page of the image whose VA the runtime remaps.
#[repr(C, align(4096))]
pub struct Page(pub [u8; 4096]);

/// The VA where shared_info gets mapped (read-write) while the suites run.
static mut SHINFO_PAGE: Page = Page([0; 4096]);
/// A page the checks remap read-only (its own frame).
static mut TEST_PAGE: Page = Page([0; 4096]);

/// The original PTE of [`SHINFO_PAGE`] while shared_info is mapped there, else 0.
static SHINFO_ORIG_PTE: AtomicU64 = AtomicU64::new(0);

/// `vcpu_info[0]` in the mapped shared_info.
fn shinfo_vcpu0() -> Option<*mut VcpuInfo> {
    (SHINFO_ORIG_PTE.load(Ordering::Relaxed) != 0).then(|| (&raw mut SHINFO_PAGE).cast())
}

/// Remaps `va` with `pte` (update_va_mapping, local invlpg).
///
/// # Safety
/// `va` must be one of the runtime's pages (nothing else may rely on its old mapping).
unsafe fn remap(va: u64, pte: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hc::update_va_mapping(va, pte, UVMF_INVLPG | UVMF_LOCAL) }
}

/// Maps shared_info read-write so the handler can read the upcall mask and cr2 and the checks
/// can change the mask. Returns update_va_mapping's rc (or -1 when the walk fails).
pub fn map_shared_info(si: &StartInfo) -> i64 {
    if SHINFO_ORIG_PTE.load(Ordering::Relaxed) != 0 {
        return 0;
    }
    let va = (&raw const SHINFO_PAGE) as u64;
    let Ok(orig) = mm::walk(si, va) else {
        return -1;
    };
    let pte = (si.shared_info & !(PAGE_SIZE - 1)) | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED;
    // SAFETY: SHINFO_PAGE is only used through this mapping.
    let rc = unsafe { remap(va, pte | PAGE_DIRTY) };
    if rc == 0 {
        SHINFO_ORIG_PTE.store(orig.value, Ordering::Relaxed);
    }
    rc
}

/// Puts the page's own frame back where shared_info was mapped.
pub fn unmap_shared_info() {
    let orig = SHINFO_ORIG_PTE.swap(0, Ordering::Relaxed);
    if orig != 0 {
        // SAFETY: restores SHINFO_PAGE's original mapping.
        unsafe { remap((&raw const SHINFO_PAGE) as u64, orig) };
    }
}

/// vCPU 0's `evtchn_upcall_mask` (0xff when shared_info is not mapped).
pub fn upcall_mask() -> u8 {
    shinfo_vcpu0().map_or(0xff, |v| {
        // SAFETY: the mapping is live (checked by shinfo_vcpu0).
        unsafe { (&raw const (*v).evtchn_upcall_mask).read_volatile() }
    })
}

/// Sets vCPU 0's `evtchn_upcall_mask` (no-op when shared_info is not mapped).
pub fn set_upcall_mask(mask: u8) {
    if let Some(v) = shinfo_vcpu0() {
        // SAFETY: the mapping is live and writable.
        unsafe { (&raw mut (*v).evtchn_upcall_mask).write_volatile(mask) }
    }
}

/// vCPU 0's `evtchn_upcall_pending` (0xff when shared_info is not mapped).
pub fn upcall_pending() -> u8 {
    shinfo_vcpu0().map_or(0xff, |v| {
        // SAFETY: the mapping is live.
        unsafe { (&raw const (*v).evtchn_upcall_pending).read_volatile() }
    })
}

/// vCPU 0's `arch.cr2` (0 when shared_info is not mapped).
pub fn vcpu_cr2() -> u64 {
    shinfo_vcpu0().map_or(0, |v| {
        // SAFETY: the mapping is live.
        unsafe { (&raw const (*v).arch.cr2).read_volatile() }
    })
}

/// The test page's VA.
pub fn test_page_va() -> u64 {
    (&raw const TEST_PAGE) as u64
}

/// Remaps the test page read-only (`ro`) or back read-write. Returns the rc (-1: no L1 entry).
pub fn test_page_set_ro(si: &StartInfo, ro: bool) -> i64 {
    let va = test_page_va();
    let Ok(l1) = mm::walk(si, va) else {
        return -1;
    };
    let pte = if ro {
        l1.value & !_PAGE_RW
    } else {
        l1.value | _PAGE_RW
    };
    // SAFETY: TEST_PAGE is only used by the checks, through raw pointers.
    unsafe { remap(va, pte) }
}

/// A small text buffer (for comparing formatted summaries); text past its size is dropped.
pub struct Buf {
    bytes: [u8; 160],
    len: usize,
}

impl Buf {
    /// Formats `args` into a new buffer.
    pub fn format(args: fmt::Arguments) -> Buf {
        let mut b = Buf {
            bytes: [0; 160],
            len: 0,
        };
        let _ = b.write_fmt(args);
        b
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl fmt::Display for Buf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
