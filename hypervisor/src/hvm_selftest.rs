//! `selftest=svm`, `selftest=vmx` and `selftest=hvm`: run a tiny 32-bit guest on AMD SVM with
//! nested paging, or on Intel VMX with EPT and unrestricted guest (`hvm` picks whichever CPUID
//! reports), and check each kind of exit the first HVM slice handles (CPUID, port I/O,
//! VMMCALL/VMCALL, nested page fault, HLT). The guest and the checks are shared; only the
//! back-end differs.

use crate::mm::frames;
use crate::printk;
use alloc::string::String;
use alloc::vec::Vec;
use xenolith_arch::hvm::nested::{FrameSource, NestedTables};
use xenolith_arch::hvm::svm::{self, Svm, SvmVcpu};
use xenolith_arch::hvm::vmx::{self, Vmx, VmxVcpu};
use xenolith_arch::hvm::{Exit, Vcpu, XEN_CPUID_SIGNATURE};
use xenolith_arch::layout::phys_to_virt;

/// Guest-physical load address of [`GUEST_CODE`].
const GUEST_ENTRY: u32 = 0x1000;
/// Guest-physical address of the NUL-terminated message the guest prints.
const GUEST_MSG: u64 = 0x1100;
/// Where the guest stores the CPUID 0x40000000 signature (ebx, ecx, edx).
const GUEST_SIG: u64 = 0x1200;
/// The unmapped guest-physical address the guest touches (outside the 2 MiB it starts with).
const GUEST_HOLE: u64 = 0x40_0000;
/// Guest RAM mapped before the guest starts.
const GUEST_RAM: u64 = 2 << 20;

/// The guest, 32-bit protected mode, flat segments, no paging, loaded at 0x1000:
/// ```text
/// 1000: b8 00 00 00 40        mov  eax, 0x40000000
/// 1005: 0f a2                 cpuid
/// 1007: 89 1d 00 12 00 00     mov  [0x1200], ebx
/// 100d: 89 0d 04 12 00 00     mov  [0x1204], ecx
/// 1013: 89 15 08 12 00 00     mov  [0x1208], edx
/// 1019: be 00 11 00 00        mov  esi, 0x1100      ; "HVM ok", 0
/// 101e: 66 ba e9 00           mov  dx, 0xe9
/// 1022: ac                 1: lodsb
/// 1023: 84 c0                 test al, al
/// 1025: 74 03                 jz   2f
/// 1027: ee                    out  dx, al
/// 1028: eb f8                 jmp  1b
/// 102a: b0 0a              2: mov  al, 0x0a
/// 102c: e6 e9                 out  0xe9, al
/// 102e: b8 01 00 00 00        mov  eax, 1
/// 1033: 0f 01 d9              vmmcall               ; vmcall (0f 01 c1) on VMX
/// 1036: 89 c7                 mov  edi, eax         ; the hypercall's result
/// 1038: c7 05 00 00 40 00     mov  dword [0x400000], 0x12345678   ; unmapped: #NPF
///       78 56 34 12
/// 1042: 8b 0d 00 00 40 00     mov  ecx, [0x400000]
/// 1048: f4                    hlt
/// ```
const GUEST_CODE: [u8; 73] = [
    0xb8, 0x00, 0x00, 0x00, 0x40, 0x0f, 0xa2, 0x89, 0x1d, 0x00, 0x12, 0x00, 0x00, 0x89, 0x0d, 0x04,
    0x12, 0x00, 0x00, 0x89, 0x15, 0x08, 0x12, 0x00, 0x00, 0xbe, 0x00, 0x11, 0x00, 0x00, 0x66, 0xba,
    0xe9, 0x00, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xb0, 0x0a, 0xe6, 0xe9, 0xb8, 0x01,
    0x00, 0x00, 0x00, 0x0f, 0x01, 0xd9, 0x89, 0xc7, 0xc7, 0x05, 0x00, 0x00, 0x40, 0x00, 0x78, 0x56,
    0x34, 0x12, 0x8b, 0x0d, 0x00, 0x00, 0x40, 0x00, 0xf4,
];
/// Offset of the hypercall instruction's last byte in [`GUEST_CODE`] (0xd9 VMMCALL, 0xc1 VMCALL).
const HYPERCALL_MODRM: usize = 0x35;

/// Frames for the guest and the SVM/VMX structures, remembered so they can be returned.
#[derive(Default)]
struct Frames {
    taken: Vec<(u64, usize)>,
}

impl FrameSource for Frames {
    fn alloc_zeroed(&mut self, order: usize) -> Option<u64> {
        let pa = frames::alloc(order)?;
        // SAFETY: the frames were just allocated for us and are covered by the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, 4096 << order) };
        self.taken.push((pa, order));
        Some(pa)
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        for &(pa, order) in &self.taken {
            frames::free(pa, order);
        }
    }
}

/// `selftest=hvm`: the SVM or the VMX self-test, whichever this CPU supports.
pub fn run_hvm() {
    let f = xenolith_arch::cpu::Features::detect();
    if f.svm {
        run_svm();
    } else if f.vmx {
        run_vmx();
    } else {
        printk!("hvm: not available (neither SVM nor VMX)\n");
    }
}

/// Runs the SVM self-test and prints its verdict.
pub fn run_svm() {
    let info = match svm::detect() {
        Ok(i) => i,
        Err(why) => {
            printk!("svm: not available ({why})\n");
            return;
        }
    };
    printk!(
        "svm: revision {}, {} ASIDs, NPT yes, nRIP save {}\n",
        info.revision,
        info.asids,
        if info.nrip_save { "yes" } else { "no" }
    );
    let mut f = Frames::default();
    let svm = match Svm::enable(&mut f) {
        Ok(s) => s,
        Err(why) => {
            printk!("svm: failed: {why}\n");
            return;
        }
    };
    let verdict = (|| {
        let npt = svm::npt(&mut f).ok_or("no memory for the NPT")?;
        load_guest(&npt, &mut f, 0xd9)?;
        let mut vcpu = SvmVcpu::new_flat32(&mut f, &npt, GUEST_ENTRY, 0x8000)
            .ok_or("no memory for the VMCB")?;
        drive(&SVM, &mut f, &npt, &mut vcpu)
    })();
    svm.disable();
    drop(f);
    match verdict {
        Ok(()) => printk!("svm: selftest passed\n"),
        Err(why) => printk!("svm: failed: {why}\n"),
    }
}

/// Runs the VMX self-test and prints its verdict.
pub fn run_vmx() {
    let info = match vmx::detect() {
        Ok(i) => i,
        Err(why) => {
            printk!("vmx: not available ({why})\n");
            return;
        }
    };
    printk!(
        "vmx: VMCS revision {:#x}, TRUE controls {}, EPT yes, unrestricted guest yes\n",
        info.revision,
        if info.true_ctls { "yes" } else { "no" }
    );
    let mut f = Frames::default();
    let vmx = match Vmx::enable(info, &mut f) {
        Ok(v) => v,
        Err(why) => {
            printk!("vmx: failed: {why}\n");
            return;
        }
    };
    let verdict = (|| {
        let ept = vmx::ept(&mut f).ok_or("no memory for the EPT")?;
        load_guest(&ept, &mut f, 0xc1)?;
        let mut vcpu = VmxVcpu::new_flat32(&vmx, &mut f, &ept, GUEST_ENTRY, 0x8000)?;
        drive(&VMX, &mut f, &ept, &mut vcpu)
        // The vCPU is dropped here: VMCLEAR before VMXOFF.
    })();
    vmx.disable();
    drop(f);
    match verdict {
        Ok(()) => printk!("vmx: selftest passed\n"),
        Err(why) => printk!("vmx: failed: {why}\n"),
    }
}

/// What differs between the back-ends in the shared guest run.
struct Flavour {
    /// Line prefix.
    tag: &'static str,
    /// The hypercall instruction's name.
    hypercall: &'static str,
    /// Whether a nested-page-fault error says the page was not present.
    not_present: fn(u64) -> bool,
    /// Explains an entry failure code.
    entry_error: fn(u64) -> String,
}

const SVM: Flavour = Flavour {
    tag: "svm",
    hypercall: "vmmcall",
    not_present: svm::npf_not_present,
    entry_error: |code| alloc::format!("VMRUN failed ({code:#x})"),
};

const VMX: Flavour = Flavour {
    tag: "vmx",
    hypercall: "vmcall",
    not_present: vmx::ept_not_present,
    entry_error: |code| {
        if code & (1 << 31) != 0 {
            alloc::format!(
                "VM entry failed: exit reason {} (invalid guest state or MSR loading)",
                code & 0xffff
            )
        } else {
            alloc::format!(
                "VM entry failed: VM-instruction error {code} ({})",
                vmx::instruction_error_name(code)
            )
        }
    },
};

/// Maps the guest's first 2 MiB and loads the guest with the hypercall instruction's last
/// byte `hypercall_modrm`.
fn load_guest(mem: &NestedTables, f: &mut Frames, hypercall_modrm: u8) -> Result<(), String> {
    let ram = f.alloc_zeroed(9).ok_or("no memory for guest RAM")?;
    mem.map(f, 0, ram, GUEST_RAM)
        .map_err(|e| alloc::format!("mapping guest RAM: {e:?}"))?;
    let mut code = GUEST_CODE;
    code[HYPERCALL_MODRM] = hypercall_modrm;
    if !(mem.write(u64::from(GUEST_ENTRY), &code) && mem.write(GUEST_MSG, b"HVM ok\0")) {
        return Err("guest RAM not writable through the nested page tables".into());
    }
    Ok(())
}

/// Runs the loaded guest to its HLT, handling each exit, then checks what it saw.
fn drive(
    fl: &Flavour,
    f: &mut Frames,
    mem: &NestedTables,
    vcpu: &mut impl Vcpu,
) -> Result<(), String> {
    let tag = fl.tag;
    let mut populated = Vec::new();
    let mut line = Vec::new();
    let mut hypercalls = 0;
    for _ in 0..10_000 {
        let exit = vcpu.run();
        match exit {
            Exit::Cpuid => {
                let r = vcpu.regs_mut();
                let leaf = r.rax as u32;
                if leaf != 0x4000_0000 {
                    return Err(alloc::format!("unexpected CPUID leaf {leaf:#x}"));
                }
                // Xen's signature and the highest Xen leaf (0x40000002, as Xen reports).
                r.rax = 0x4000_0002;
                r.rbx = u64::from(XEN_CPUID_SIGNATURE[0]);
                r.rcx = u64::from(XEN_CPUID_SIGNATURE[1]);
                r.rdx = u64::from(XEN_CPUID_SIGNATURE[2]);
                skip(vcpu, exit)?;
                printk!("{tag}: cpuid 0x40000000 -> \"XenVMMXenVMM\" ok\n");
            }
            Exit::Io {
                port: 0xe9,
                size: 1,
                write: true,
            } => {
                let b = vcpu.regs().rax as u8;
                if b == b'\n' {
                    printk!("(HVM) {}\n", String::from_utf8_lossy(&line));
                    line.clear();
                } else {
                    line.push(b);
                }
                skip(vcpu, exit)?;
            }
            Exit::Vmmcall => {
                let r = vcpu.regs_mut();
                hypercalls += 1;
                printk!("{tag}: {} eax={:#x} -> 0 ok\n", fl.hypercall, r.rax);
                if r.rax != 1 {
                    return Err(alloc::format!("{} with eax={:#x}", fl.hypercall, r.rax));
                }
                r.rax = 0;
                skip(vcpu, exit)?;
            }
            Exit::NestedPageFault { gpa, error } => {
                let page = svm::gpa_page(gpa);
                if !(fl.not_present)(error) || populated.contains(&page) || gpa < GUEST_RAM {
                    return Err(alloc::format!(
                        "unexpected #NPF at {gpa:#x} error {error:#x}"
                    ));
                }
                // Populate: back the page with a fresh frame and retry the access.
                let frame = f.alloc_zeroed(0).ok_or("no memory to populate")?;
                mem.map(f, page, frame, 4096)
                    .map_err(|e| alloc::format!("populating {page:#x}: {e:?}"))?;
                populated.push(page);
                printk!("{tag}: npf at {gpa:#x} (error {error:#x}) populated\n");
            }
            Exit::ExternalInterrupt => {} // taken by the host once it runs again; re-enter
            Exit::Hlt => {
                skip(vcpu, exit)?;
                printk!("{tag}: hlt\n");
                break;
            }
            Exit::Shutdown => return Err("guest triple fault".into()),
            Exit::EntryFailed(code) => return Err((fl.entry_error)(code)),
            other => {
                return Err(alloc::format!(
                    "unexpected exit {other:?} at rip {:#x}",
                    vcpu.regs().rip
                ));
            }
        }
    }
    // The guest's view of what it was given.
    let r = *vcpu.regs();
    let mut sig = [0u8; 12];
    if !mem.read(GUEST_SIG, &mut sig) || &sig != b"XenVMMXenVMM" {
        return Err(alloc::format!("guest saw CPUID signature {sig:?}"));
    }
    if hypercalls != 1 || r.rdi != 0 {
        return Err(alloc::format!(
            "{hypercalls} hypercalls, guest saw eax={:#x}",
            r.rdi
        ));
    }
    if populated != [GUEST_HOLE] || r.rcx as u32 != 0x1234_5678 {
        return Err(alloc::format!(
            "populated {populated:x?}, guest read back {:#x}",
            r.rcx
        ));
    }
    if r.rip != u64::from(GUEST_ENTRY) + GUEST_CODE.len() as u64 {
        return Err(alloc::format!("guest stopped at rip {:#x}", r.rip));
    }
    Ok(())
}

/// Advances the guest's rip past the exiting instruction.
fn skip(vcpu: &mut impl Vcpu, exit: Exit) -> Result<(), String> {
    vcpu.skip_instruction().map(|_| ()).ok_or_else(|| {
        alloc::format!(
            "cannot decode the instruction at rip {:#x} ({exit:?})",
            vcpu.regs().rip
        )
    })
}
