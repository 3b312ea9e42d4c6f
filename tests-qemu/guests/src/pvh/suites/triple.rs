//! `triple` (only when named): says it is about to, then triple-faults on purpose. With an
//! IDT of limit 0, `ud2`'s #UD cannot be delivered (#GP), nor can that #GP (#DF), nor the #DF:
//! the CPU shuts down. A hypervisor must then crash this domain only (Xen prints
//! `d<N>v<M>: Triple fault` and calls `domain_crash`). Should the vCPU ever run on, the suite
//! reports a failure and crashes the domain itself.

use core::arch::asm;

use crate::console::println;
use crate::hypercall::crash;
use crate::suites::Env;
use crate::verdict::Suite;

/// The `lidt` operand: limit 0, base 0 (no gate is reachable).
#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

static EMPTY_IDT: IdtPointer = IdtPointer { limit: 0, base: 0 };

pub fn run(s: &mut Suite, _env: &Env) {
    println!("PVHTEST triple: about to triple fault (IDT limit 0, then ud2)");
    // SAFETY: deliberately fatal: with interrupts off and no usable IDT the `ud2` ends in a
    // shutdown (triple fault), which the hypervisor turns into a crash of this domain. Nothing
    // here touches memory but the IDT pointer.
    unsafe {
        asm!(
            "cli",
            "lidt [{idt}]",
            "ud2",
            idt = in(reg) &raw const EMPTY_IDT,
            options(readonly, nostack)
        )
    };
    s.check(
        "stopped",
        false,
        format_args!("the vCPU ran on after the triple fault"),
    );
    crash()
}
