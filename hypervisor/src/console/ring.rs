//! The hypervisor as console backend of domUs (what xenconsoled, or Xen's PV-shim `consoled`,
//! does): the domain writes its `xencons_interface` ring and signals its console event
//! channel; the hypervisor copies the output to the serial console, a line at a time with a
//! `(dN) ` prefix, and signals back so the guest knows the ring has room.

use crate::domain::Domain;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;
use xenolith_arch::layout::phys_to_virt;

/// `struct xencons_interface` (`xen/include/public/io/console.h`): `in[1024]`, `out[2048]`,
/// then `in_cons`, `in_prod`, `out_cons`, `out_prod`.
const IN_SIZE: u32 = 1024;
const IN_CONS: usize = 3072;
const IN_PROD: usize = 3076;
const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// Whether each domain's output stopped in the middle of a line.
static MID_LINE: Mutex<BTreeMap<u16, bool>> = Mutex::new(BTreeMap::new());

/// Takes what `d` wrote to its console ring, prints complete lines, and tells the guest.
pub fn service(d: &Domain) {
    let Some(ring) = d.console else {
        return;
    };
    let base = phys_to_virt(ring.mfn << 12);
    // SAFETY: the ring page belongs to the domain for its whole life (allocated by the
    // builder, freed only after its vCPUs stopped) and is mapped by the direct map; the
    // indices are naturally aligned u32s the guest updates concurrently.
    let (cons, prod) = unsafe {
        (
            AtomicU32::from_ptr((base + OUT_CONS as u64) as *mut u32),
            AtomicU32::from_ptr((base + OUT_PROD as u64) as *mut u32),
        )
    };
    let mut c = cons.load(Ordering::Acquire);
    let p = prod.load(Ordering::Acquire);
    // A guest that claims more than a ring's worth has corrupted its indices: take one ring.
    let n = p.wrapping_sub(c).min(OUT_SIZE);
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let at = base + (OUT as u64) + u64::from(c % OUT_SIZE);
        // SAFETY: inside the ring page, as above.
        out.push(unsafe { (at as *const u8).read_volatile() });
        c = c.wrapping_add(1);
    }
    cons.store(c, Ordering::Release);
    if n == 0 {
        return;
    }
    emit(d.id, &out);
    // Room again in the ring: the backend signals the same channel.
    notify(d, ring.port);
}

/// Typed input for `d`: into its ring's `in` half (what does not fit is dropped, as
/// xenconsoled does when the guest does not read), then a signal on its console port.
pub fn input(d: &Domain, bytes: &[u8]) {
    let Some(ring) = d.console else {
        return;
    };
    if d.relinquished.load(Ordering::Acquire) {
        return;
    }
    let base = phys_to_virt(ring.mfn << 12);
    // SAFETY: as in `service`.
    let (cons, prod) = unsafe {
        (
            AtomicU32::from_ptr((base + IN_CONS as u64) as *mut u32),
            AtomicU32::from_ptr((base + IN_PROD as u64) as *mut u32),
        )
    };
    let mut p = prod.load(Ordering::Acquire);
    for &b in bytes {
        if p.wrapping_sub(cons.load(Ordering::Acquire)) >= IN_SIZE {
            break;
        }
        // SAFETY: inside the ring page.
        unsafe { ((base + u64::from(p % IN_SIZE)) as *mut u8).write_volatile(b) };
        p = p.wrapping_add(1);
    }
    prod.store(p, Ordering::Release);
    notify(d, ring.port);
}

/// Signals `d`'s console port to whichever vCPU it notifies.
fn notify(d: &Domain, port: u32) {
    let notify = d.evtchn.lock().notify_vcpu(port).unwrap_or(0);
    if let Some(v) = d.vcpus.get(notify as usize).or(d.vcpus.first()) {
        crate::pv::events::set_pending(v, port);
    }
}

/// Prints `bytes` from domain `id` as they come, `(dN) ` at the start of each line (a line
/// may arrive in pieces: a prompt, then the echo of what is typed).
fn emit(id: u16, bytes: &[u8]) {
    let mut mid_line = MID_LINE.lock();
    let mid = mid_line.entry(id).or_insert(false);
    let text: Vec<u8> = bytes.iter().copied().filter(|&b| b != b'\r').collect();
    for part in text.split_inclusive(|&b| b == b'\n') {
        crate::console::guest_write_part(id, part, !*mid);
        *mid = !part.ends_with(b"\n");
    }
}

/// Ends `id`'s last line if it is unfinished (when the domain stops).
pub fn flush(id: u16) {
    if MID_LINE.lock().remove(&id) == Some(true) {
        crate::console::guest_write_part(id, b"\n", false);
    }
}
