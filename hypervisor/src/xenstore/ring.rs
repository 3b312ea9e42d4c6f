//! The store's end of a domain's xenstore ring (`struct xenstore_domain_interface`,
//! `xen/include/public/io/xs_wire.h`): requests in `req[1024]`, replies and watch events out
//! through `rsp[1024]`, each with its consumer/producer index; the domain's store event channel
//! says "look at the ring" both ways.

use super::{HEADER, Message, PAYLOAD_MAX, Store};
use crate::domain::Domain;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;
use xenolith_arch::layout::phys_to_virt;

const RING: u32 = 1024;
const REQ: u64 = 0;
const RSP: u64 = 1024;
const REQ_CONS: u64 = 2048;
const REQ_PROD: u64 = 2052;
const RSP_CONS: u64 = 2056;
const RSP_PROD: u64 = 2060;

/// One domain's store connection.
struct Backend {
    store: Store,
    mfn: u64,
    port: u32,
    /// Request bytes taken from the ring, not yet a whole message.
    partial: Vec<u8>,
    /// Reply bytes waiting for room in the ring.
    out: VecDeque<u8>,
}

static BACKENDS: Mutex<BTreeMap<u16, Backend>> = Mutex::new(BTreeMap::new());

/// Serves `domid`'s xenstore ring at frame `mfn`, signalled on its `port`, with `store`.
pub fn attach(domid: u16, store: Store, mfn: u64, port: u32) {
    BACKENDS.lock().insert(
        domid,
        Backend {
            store,
            mfn,
            port,
            partial: Vec::new(),
            out: VecDeque::new(),
        },
    );
}

/// Forgets a domain's store (it stopped).
pub fn detach(domid: u16) {
    BACKENDS.lock().remove(&domid);
}

/// The ring indices of the page at `mfn`.
fn index(mfn: u64, off: u64) -> &'static AtomicU32 {
    // SAFETY: the ring page belongs to its domain, which stays alive while attached (detach
    // runs before its memory is freed); the indices are aligned u32s.
    unsafe { AtomicU32::from_ptr((phys_to_virt(mfn << 12) + off) as *mut u32) }
}

fn byte(mfn: u64, off: u64) -> *mut u8 {
    (phys_to_virt(mfn << 12) + off) as *mut u8
}

/// `d` signalled `port`: if it is `d`'s store port, takes its requests, answers them and
/// signals back. Returns whether the port was the store's.
pub fn service(d: &Domain, port: u32) -> bool {
    let mut all = BACKENDS.lock();
    let Some(b) = all.get_mut(&d.id).filter(|b| b.port == port) else {
        return false;
    };
    // Requests.
    let (cons, prod) = (index(b.mfn, REQ_CONS), index(b.mfn, REQ_PROD));
    let mut c = cons.load(Ordering::Acquire);
    let p = prod.load(Ordering::Acquire);
    let n = p.wrapping_sub(c).min(RING);
    for _ in 0..n {
        // SAFETY: inside the ring page (index modulo the ring size).
        b.partial
            .push(unsafe { byte(b.mfn, REQ + u64::from(c % RING)).read_volatile() });
        c = c.wrapping_add(1);
    }
    cons.store(c, Ordering::Release);
    while let Some((kind, req_id, tx_id, len)) = Message::header(&b.partial) {
        if len > PAYLOAD_MAX {
            // A corrupt stream: drop it, as xenstored drops a bad connection.
            b.partial.clear();
            break;
        }
        if b.partial.len() < HEADER + len {
            break;
        }
        let payload = b.partial[HEADER..HEADER + len].to_vec();
        b.partial.drain(..HEADER + len);
        let req = Message {
            kind,
            req_id,
            tx_id,
            payload,
        };
        for m in b.store.handle(&req) {
            b.out.extend(m.to_bytes());
        }
    }
    // Replies, as far as they fit.
    let (rcons, rprod) = (index(b.mfn, RSP_CONS), index(b.mfn, RSP_PROD));
    let mut rp = rprod.load(Ordering::Acquire);
    while let Some(&x) = b.out.front() {
        if rp.wrapping_sub(rcons.load(Ordering::Acquire)) >= RING {
            break;
        }
        // SAFETY: inside the ring page.
        unsafe { byte(b.mfn, RSP + u64::from(rp % RING)).write_volatile(x) };
        rp = rp.wrapping_add(1);
        b.out.pop_front();
    }
    rprod.store(rp, Ordering::Release);
    drop(all);
    if let Some(v) = d.vcpus.first() {
        let notify = d.evtchn.lock().notify_vcpu(port).unwrap_or(v.id);
        crate::pv::events::raise(d, port, notify);
    }
    true
}
