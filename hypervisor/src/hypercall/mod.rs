//! The hypercall table: every hypercall Xenolith implements, declared once.
//!
//! Handlers get the calling vCPU and the five argument registers (`rdi rsi rdx r10 r8` for a
//! 64-bit PV guest) and return the value for `rax` or an [`Errno`]. Numbers missing from the
//! table return `-ENOSYS`, logged once per domain and number, as Xen does.

// Xen's constant names are kept as spelled in its headers, so they can be grepped against C.
#![allow(non_upper_case_globals)]

mod console_io;
pub mod desc;
pub mod event_channel_op;
pub mod grant_table_op;
pub mod memory_op;
mod misc;
mod mmu;
mod multicall;
mod platform;
mod sched_op;
mod traps_cb;
pub mod vcpu_op;
mod xen_version;

use crate::domain::Vcpu;
use crate::printk_lvl;
use xen_abi::errno::Errno;
use xen_abi::hypercall as nr;
use xenolith_arch::trap::TrapFrame;

/// What a handler can touch: the calling vCPU and its live registers.
pub struct Ctx<'a> {
    /// The calling vCPU.
    pub vcpu: &'a mut Vcpu,
    /// The guest's registers (writes take effect on return to the guest).
    pub regs: &'a mut TrapFrame,
}

/// A hypercall handler.
pub type Handler = fn(&mut Ctx<'_>, [u64; 5]) -> Result<i64, Errno>;

/// Declares the table: `number => handler`. Generates `lookup` and `IMPLEMENTED`.
macro_rules! hypercall_table {
    ($($nr:path => $handler:path),* $(,)?) => {
        /// The handler for hypercall `number`, if implemented.
        pub fn lookup(number: u64) -> Option<Handler> {
            match number {
                $($nr => Some($handler),)*
                _ => None,
            }
        }

        /// Numbers of the implemented hypercalls (for docs and tests).
        pub const IMPLEMENTED: &[u64] = &[$($nr),*];
    };
}

hypercall_table! {
    nr::console_io => console_io::do_console_io,
    nr::xen_version => xen_version::do_xen_version,
    nr::sched_op => sched_op::do_sched_op,
    nr::memory_op => memory_op::do_memory_op,
    nr::vm_assist => misc::do_vm_assist,
    nr::set_segment_base => misc::do_set_segment_base,
    nr::stack_switch => misc::do_stack_switch,
    nr::fpu_taskswitch => misc::do_fpu_taskswitch,
    nr::set_trap_table => traps_cb::do_set_trap_table,
    nr::set_callbacks => traps_cb::do_set_callbacks,
    nr::callback_op => traps_cb::do_callback_op,
    nr::vcpu_op => vcpu_op::do_vcpu_op,
    nr::set_timer_op => vcpu_op::do_set_timer_op,
    nr::event_channel_op => event_channel_op::do_event_channel_op,
    nr::grant_table_op => grant_table_op::do_grant_table_op,
    nr::mmu_update => mmu::do_mmu_update,
    nr::update_va_mapping => mmu::do_update_va_mapping,
    nr::update_va_mapping_otherdomain => mmu::do_update_va_mapping_otherdomain,
    nr::mmuext_op => mmu::do_mmuext_op,
    nr::set_gdt => desc::do_set_gdt,
    nr::multicall => multicall::do_multicall,
    nr::physdev_op => platform::do_physdev_op,
    nr::platform_op => platform::do_platform_op,
    nr::get_debugreg => platform::do_get_debugreg,
    nr::set_debugreg => platform::do_set_debugreg,
    nr::update_descriptor => desc::do_update_descriptor,
}

/// Runs hypercall `number` for `ctx` and returns the value for the guest's `rax`.
pub fn dispatch(ctx: &mut Ctx<'_>, number: u64, args: [u64; 5]) -> u64 {
    match lookup(number) {
        Some(h) => match h(ctx, args) {
            Ok(v) => v as u64,
            Err(e) => {
                if e == Errno::ENOSYS {
                    // platform_op's command is the first field of the structure it points to.
                    let cmd = if number == nr::platform_op {
                        crate::guest_mem::read_guest::<u32>(args[0]).map_or(u64::MAX, u64::from)
                    } else {
                        args[0]
                    };
                    report_unknown_subop(ctx, number, cmd);
                }
                e.to_ret() as u64
            }
        },
        None => {
            report_unknown(ctx, number);
            Errno::ENOSYS.to_ret() as u64
        }
    }
}

/// Logs an implemented hypercall's `-ENOSYS` sub-operation, once per (number, command).
fn report_unknown_subop(ctx: &mut Ctx<'_>, number: u64, cmd: u64) {
    static SEEN: spin::Mutex<alloc::vec::Vec<(u64, u64)>> =
        spin::Mutex::new(alloc::vec::Vec::new());
    let key = (number, cmd & 0xffff_ffff);
    {
        let mut seen = SEEN.lock();
        if seen.contains(&key) || seen.len() >= 256 {
            return;
        }
        seen.push(key);
    }
    printk_lvl!(
        Warning,
        "{}v{} {} op {}: not implemented (-ENOSYS)\n",
        ctx.vcpu.domain().label(),
        ctx.vcpu.id,
        nr::name(number),
        key.1
    );
}

fn report_unknown(ctx: &mut Ctx<'_>, number: u64) {
    let d = ctx.vcpu.domain();
    let bit = 1u64 << (number & 63);
    let first = {
        let mut inner = d.inner.lock();
        let first = number >= 64 || inner.unknown_hypercalls_logged & bit == 0;
        inner.unknown_hypercalls_logged |= bit;
        first
    };
    if first {
        printk_lvl!(
            Warning,
            "{}v{} unimplemented hypercall {} ({})\n",
            d.label(),
            ctx.vcpu.id,
            number,
            nr::name(number)
        );
    }
}
