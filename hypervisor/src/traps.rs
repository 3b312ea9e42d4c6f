//! Trap dispatch and the fatal-trap report (Xen's `show_execution_state` + `panic` format).

use crate::{printk, shutdown};
use core::fmt::Write;
use xenolith_arch::apic;
use xenolith_arch::cpu;
use xenolith_arch::percpu::{self, STACK_SIZE};
use xenolith_arch::trap::{TrapFrame, exception_name, pf};

/// LAPIC timer vector (Xen's `LOCAL_TIMER_VECTOR` region).
pub const TIMER_VECTOR: u8 = 0xf9;
/// Spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Entered from `xenolith_trap_common` for every vector.
#[unsafe(no_mangle)]
extern "C" fn xenolith_trap_handler(f: &mut TrapFrame) {
    let from_guest = f.cs & 3 == 3;
    match f.entry_vector {
        // Guest exceptions go to the guest, except NMIs and machine checks (the hypervisor's).
        v if (v < 32 && v != 2 && v != 18 || v == 0x80) && from_guest => {
            crate::pv::entry::guest_trap(f)
        }
        11..=14 if let Some(fix) = xenolith_arch::uaccess::fixup(f.rip) => f.rip = fix,
        2 => printk!("CPU{}: NMI received, ignored\n", percpu::current().cpu),
        v if v < 32 => fatal_trap(f),
        v if v == u32::from(TIMER_VECTOR) => {
            crate::time::timer_interrupt();
            apic::eoi();
            if from_guest {
                crate::pv::entry::guest_timer_interrupt(f);
            } else {
                // In the idle loop: raise the due events; the loop then looks for work.
                crate::sched::timer_tick();
            }
        }
        v if v == u32::from(crate::sched::EVENT_CHECK_VECTOR) => {
            apic::eoi();
            // From the guest: deliver what is pending, or leave if the vCPU went down. In the
            // hypervisor (halted in the idle loop or SCHEDOP_block/poll): the loop rechecks.
            crate::sched::service_dump(f, from_guest);
            if from_guest {
                crate::pv::entry::guest_event_check(f);
            }
        }
        v if v == u32::from(crate::console::input::SERIAL_VECTOR) => {
            crate::console::input::interrupt();
            apic::eoi();
            crate::sched::service_dump(f, from_guest);
            // Input may have raised events for this CPU's vCPU (VIRQ_CONSOLE, its ring).
            if from_guest {
                crate::pv::entry::guest_event_check(f);
            }
        }
        v if v == u32::from(crate::sched::INVALIDATE_TLB_VECTOR) => {
            crate::sched::invalidate_interrupt();
        }
        v if v == u32::from(SPURIOUS_VECTOR) => {}
        v => {
            printk!(
                "CPU{}: unexpected interrupt vector {v:#04x}\n",
                percpu::current().cpu
            );
            apic::eoi();
        }
    }
}

/// A `core::fmt::Write` that prints through the fatal console path, line by line.
struct Fatal;

impl Write for Fatal {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::console::print_fatal(format_args!("{s}"));
        Ok(())
    }
}

/// Prints Xen's register dump for a hypervisor-context trap frame.
fn show_registers(w: &mut Fatal, f: &TrapFrame) {
    let cpu = percpu::current().cpu;
    let _ = writeln!(
        w,
        "----[ Xenolith-{}  x86_64  debug=n  Not tainted ]----",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(w, "CPU:    {cpu}");
    let _ = writeln!(w, "RIP:    {:04x}:[<{:016x}>]", f.cs, f.rip);
    let _ = writeln!(w, "RFLAGS: {:016x}   CONTEXT: hypervisor", f.rflags);
    let rows = [
        [("rax", f.rax), ("rbx", f.rbx), ("rcx", f.rcx)],
        [("rdx", f.rdx), ("rsi", f.rsi), ("rdi", f.rdi)],
        [("rbp", f.rbp), ("rsp", f.rsp), ("r8 ", f.r8)],
        [("r9 ", f.r9), ("r10", f.r10), ("r11", f.r11)],
        [("r12", f.r12), ("r13", f.r13), ("r14", f.r14)],
        [
            ("r15", f.r15),
            ("cr0", cpu::read_cr0()),
            ("cr4", cpu::read_cr4()),
        ],
    ];
    for r in rows {
        let _ = writeln!(
            w,
            "{}: {:016x}   {}: {:016x}   {}: {:016x}",
            r[0].0, r[0].1, r[1].0, r[1].1, r[2].0, r[2].1
        );
    }
    let _ = writeln!(
        w,
        "cr3: {:016x}   cr2: {:016x}",
        cpu::read_cr3(),
        cpu::read_cr2()
    );
    let _ = writeln!(w, "ss: {:04x}   cs: {:04x}", f.ss, f.cs);
}

/// Prints the words above `rsp` and the frame-pointer call chain, bounded by the stack block.
fn show_stack(w: &mut Fatal, f: &TrapFrame) {
    let base = percpu::block_base(f.rsp);
    let top = base + STACK_SIZE;
    let in_block = |a: u64| a >= base && a + 8 <= top && a.is_multiple_of(8);
    let _ = write!(w, "Xen stack trace from rsp={:016x}:", f.rsp);
    for i in 0..24u64 {
        let a = f.rsp + i * 8;
        if !in_block(a) {
            break;
        }
        if i % 4 == 0 {
            let _ = write!(w, "\n  ");
        }
        // SAFETY: `a` lies inside the CPU's mapped stack block.
        let v = unsafe { (a as *const u64).read() };
        let _ = write!(w, " {v:016x}");
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "Xen call trace:");
    let _ = writeln!(w, "   [<{:016x}>] R", f.rip);
    let mut rbp = f.rbp;
    for _ in 0..32 {
        if !in_block(rbp) || !in_block(rbp + 8) {
            break;
        }
        // SAFETY: both words lie inside the mapped stack block.
        let (next, ret) = unsafe { ((rbp as *const u64).read(), ((rbp + 8) as *const u64).read()) };
        if ret == 0 {
            break;
        }
        let _ = writeln!(w, "   [<{ret:016x}>] F");
        if next <= rbp {
            break;
        }
        rbp = next;
    }
}

/// Reports an unrecoverable trap in hypervisor context and stops the machine.
fn fatal_trap(f: &TrapFrame) -> ! {
    let w = &mut Fatal;
    show_registers(w, f);
    show_stack(w, f);
    let cpu = percpu::current().cpu;
    let _ = writeln!(w);
    let _ = writeln!(w, "****************************************");
    let _ = writeln!(w, "Panic on CPU {cpu}:");
    if f.entry_vector == 14 {
        let _ = writeln!(w, "FATAL PAGE FAULT");
        let _ = writeln!(w, "[error_code={:04x}]", f.error_code);
        let _ = writeln!(w, "Faulting linear address: {:016x}", cpu::read_cr2());
        let e = f.error_code;
        let _ = writeln!(
            w,
            "({} {} in {} mode{})",
            if e & pf::PRESENT != 0 {
                "protection violation"
            } else {
                "page not present"
            },
            if e & pf::INSN != 0 {
                "on fetch"
            } else if e & pf::WRITE != 0 {
                "on write"
            } else {
                "on read"
            },
            if e & pf::USER != 0 {
                "user"
            } else {
                "supervisor"
            },
            if e & pf::RSVD != 0 {
                ", reserved bit set"
            } else {
                ""
            },
        );
    } else {
        let _ = writeln!(
            w,
            "FATAL TRAP: vector = {} ({})",
            f.entry_vector,
            exception_name(f.entry_vector)
        );
        let _ = writeln!(w, "[error_code={:04x}]", f.error_code);
    }
    let _ = writeln!(w, "****************************************");
    let _ = writeln!(w);
    shutdown::fatal_stop()
}
