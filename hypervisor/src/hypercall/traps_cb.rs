//! `set_trap_table`, `set_callbacks` and `callback_op` (Xen's `xen/arch/x86/pv/traps.c`,
//! `callback.c`).

use super::Ctx;
use crate::domain::TrapInfo;
use crate::guest_mem::copy_from_guest;
use xen_abi::errno::Errno;

use xenolith_arch::paging::is_canonical as canonical;

/// `set_trap_table(traps)`: a list of `trap_info` ended by an entry with address 0; a null
/// pointer clears the whole table.
pub fn do_set_trap_table(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let table = &mut ctx.vcpu.pv.trap_table;
    if a[0] == 0 {
        table.iter_mut().for_each(|t| *t = TrapInfo::default());
        return Ok(0);
    }
    // Bounded by the vector count: a guest could otherwise keep the CPU forever (Xen uses a
    // continuation instead; 256 distinct vectors is all a table can mean).
    for i in 0..4096u64 {
        let mut raw = [0u8; 16];
        copy_from_guest(&mut raw, a[0] + i * 16)?;
        let address = u64::from_le_bytes(raw[8..16].try_into().unwrap_or([0; 8]));
        if address == 0 {
            return Ok(0);
        }
        if !canonical(address) {
            return Err(Errno::EINVAL);
        }
        // Xen's fixup_guest_code_selector: RPL 0 becomes RPL 3 (the guest kernel runs there).
        let mut cs = u16::from_le_bytes([raw[2], raw[3]]);
        if cs & 3 == 0 {
            cs |= 3;
        }
        table[usize::from(raw[0])] = TrapInfo {
            cs,
            flags: raw[1],
            address,
        };
    }
    Ok(0)
}

use xen_abi::callback::{
    CALLBACKOP_register, CALLBACKOP_unregister, CALLBACKTYPE_event, CALLBACKTYPE_failsafe,
    CALLBACKTYPE_nmi, CALLBACKTYPE_syscall,
};

fn register(ctx: &mut Ctx<'_>, ty: u16, address: u64) -> Result<i64, Errno> {
    register_flags(ctx, ty, 0, address)
}

/// `CALLBACKF_mask_events`: deliver the callback with events masked.
const CALLBACKF_MASK_EVENTS: u16 = 1;

fn register_flags(ctx: &mut Ctx<'_>, ty: u16, flags: u16, address: u64) -> Result<i64, Errno> {
    if !canonical(address) {
        return Err(Errno::EINVAL);
    }
    let pv = &mut ctx.vcpu.pv;
    match ty {
        CALLBACKTYPE_event => pv.event_callback = address,
        CALLBACKTYPE_failsafe => pv.failsafe_callback = address,
        CALLBACKTYPE_syscall => {
            pv.syscall_callback = address;
            pv.syscall_mask_events = flags & CALLBACKF_MASK_EVENTS != 0;
        }
        // 32-bit entry points: accepted, as Xen does, but unused by 64-bit guests.
        xen_abi::callback::CALLBACKTYPE_syscall32 | xen_abi::callback::CALLBACKTYPE_sysenter => {}
        // NMIs are never delivered to guests yet; accept the registration as Xen does.
        CALLBACKTYPE_nmi => {}
        _ => return Err(Errno::ENOSYS),
    }
    Ok(0)
}

/// `set_callbacks(event, failsafe, syscall)` (64-bit form).
pub fn do_set_callbacks(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    register(ctx, CALLBACKTYPE_event, a[0])?;
    register(ctx, CALLBACKTYPE_failsafe, a[1])?;
    register(ctx, CALLBACKTYPE_syscall, a[2])
}

/// `callback_op(cmd, arg)`.
pub fn do_callback_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    match a[0] as u32 {
        CALLBACKOP_register => {
            let mut raw = [0u8; 16];
            copy_from_guest(&mut raw, a[1])?;
            let ty = u16::from_le_bytes([raw[0], raw[1]]);
            let flags = u16::from_le_bytes([raw[2], raw[3]]);
            register_flags(
                ctx,
                ty,
                flags,
                u64::from_le_bytes(raw[8..16].try_into().unwrap_or([0; 8])),
            )
        }
        CALLBACKOP_unregister => {
            let mut raw = [0u8; 2];
            copy_from_guest(&mut raw, a[1])?;
            match u16::from_le_bytes(raw) {
                // Xen refuses to unregister the event and failsafe callbacks.
                CALLBACKTYPE_event | CALLBACKTYPE_failsafe | CALLBACKTYPE_syscall => {
                    Err(Errno::EINVAL)
                }
                ty => register(ctx, ty, 0),
            }
        }
        _ => Err(Errno::ENOSYS),
    }
}
