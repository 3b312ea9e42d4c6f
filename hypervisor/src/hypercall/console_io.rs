//! `HYPERVISOR_console_io` (Xen's `do_console_io`, `xen/drivers/char/console.c`).

use super::Ctx;
use crate::guest_mem::copy_from_guest;
use xen_abi::errno::Errno;

use xen_abi::xen::{CONSOLEIO_read, CONSOLEIO_write};

/// `console_io(cmd, count, buffer)`: write guest text to the console, or read serial input.
pub fn do_console_io(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    // Xen's parameters are `unsigned int`: the upper halves of the registers are ignored.
    let (cmd, count, buf) = (a[0] as u32, a[1] as u32, a[2]);
    if !ctx.vcpu.domain().privileged {
        // XSM's default policy: only the hardware domain uses the hypervisor console.
        return Err(Errno::EPERM);
    }
    match cmd {
        CONSOLEIO_write => {
            // Copy in chunks, as Xen's `guest_console_write` does, so a huge count cannot
            // make the hypervisor allocate without bound.
            let mut chunk = [0u8; 128];
            let mut done = 0u64;
            while done < u64::from(count) {
                let n = (u64::from(count) - done).min(chunk.len() as u64) as usize;
                copy_from_guest(&mut chunk[..n], buf + done)?;
                crate::console::guest_write(ctx.vcpu.domain().id, &chunk[..n]);
                done += n as u64;
            }
            Ok(0)
        }
        CONSOLEIO_read => {
            if (count as i32) < 0 {
                return Err(Errno::E2BIG);
            }
            // What was typed while dom0 had the serial input (`CTRL-a` switches).
            let bytes = crate::console::input::dom0_read(count as usize);
            crate::guest_mem::copy_to_guest(buf, &bytes)?;
            Ok(bytes.len() as i64)
        }
        _ => Err(Errno::ENOSYS),
    }
}
