//! `physdev_op`, `platform_op` and the debug-register hypercalls (the parts implemented so far).

use super::Ctx;
use crate::guest_mem::copy_from_guest;
use xen_abi::errno::Errno;
use xen_abi::physdev::PHYSDEVOP_set_iopl;
use xen_abi::platform::XENPF_INTERFACE_VERSION;

/// `physdev_op(cmd, arg)`.
pub fn do_physdev_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    match a[0] as u32 {
        PHYSDEVOP_set_iopl => {
            let mut b = [0u8; 4];
            copy_from_guest(&mut b, a[1])?;
            let iopl = u32::from_le_bytes(b);
            if iopl > 3 {
                return Err(Errno::EINVAL);
            }
            ctx.vcpu.pv.iopl = iopl;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `platform_op(op)`: hardware-domain only; the interface version must match.
pub fn do_platform_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    if !ctx.vcpu.domain().privileged {
        return Err(Errno::EPERM);
    }
    let mut b = [0u8; 8];
    copy_from_guest(&mut b, a[0])?;
    if u32::from_le_bytes(b[4..8].try_into().unwrap_or_default()) != XENPF_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    Err(Errno::ENOSYS)
}

/// `get_debugreg(reg)` (Xen's `do_get_debugreg`): the vCPU's virtual debug registers.
pub fn do_get_debugreg(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let dr = &ctx.vcpu.pv.debugreg;
    match a[0] {
        r @ 0..=3 => Ok(dr[r as usize] as i64),
        6 => Ok(dr[6] as i64),
        7 => Ok(dr[7] as i64),
        _ => Err(Errno::EINVAL),
    }
}

/// `set_debugreg(reg, value)` (Xen's `set_debugreg`): addresses must be the guest's; DR6/DR7
/// get their architectural fixed bits. The values are kept, not loaded into hardware.
pub fn do_set_debugreg(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (reg, value) = (a[0], a[1]);
    let dr = &mut ctx.vcpu.pv.debugreg;
    match reg {
        0..=3 => {
            if !crate::guest_mem::range_ok(value, 1) {
                return Err(Errno::EPERM);
            }
            dr[reg as usize] = value;
        }
        6 => {
            if value >> 32 != 0 {
                return Err(Errno::EPERM);
            }
            dr[6] = (value & !0xffff_1ff0u64 & 0xffff_ffff) | 0xffff_0ff0;
        }
        7 => {
            if value >> 32 != 0 {
                return Err(Errno::EPERM);
            }
            dr[7] = (value & !0xd800) | 0x400;
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}
