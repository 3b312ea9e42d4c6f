//! Raising events for a domain's vCPUs through its event-channel ABI (2-level or FIFO), the
//! domain's guest memory as the ABI sees it, and delivering the upcall (Xen's
//! `send_guest_vcpu_virq`, `evtchn_port_set_pending` and the `test_all_events` check on the way
//! back to the guest).

use super::bounce::TrapBounce;
use crate::domain::{Domain, Vcpu};
use crate::evtchn::{EventMemory, EvtchnDomain, GuestMem, Notify, PortTable};
use core::sync::atomic::Ordering;
use spin::Mutex;
use xenolith_arch::layout::phys_to_virt;
use xenolith_arch::trap::TrapFrame;

impl EventMemory for Domain {
    fn shared_info(&self) -> Option<GuestMem> {
        if self.relinquished.load(Ordering::Acquire) {
            return None;
        }
        let va = phys_to_virt(self.shared_info_mfn << 12);
        // SAFETY: the domain's shared_info frame is the hypervisor's and stays mapped by the
        // direct map until the domain's memory is relinquished (checked above; teardown
        // closes the ports before it frees the frames).
        unsafe { GuestMem::from_raw(va as *mut u8, 4096, self.shared_info_mfn) }
    }

    fn vcpu_info(&self, vcpu: u32) -> Option<GuestMem> {
        let v = self.vcpus.get(vcpu as usize)?;
        if v.pv.vcpu_info == 0 || self.relinquished.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: `vcpu_info` is the direct-map address of 64 bytes in shared_info or in a
        // guest page the hypervisor holds a writable type reference on while registered.
        unsafe { GuestMem::from_raw(v.pv.vcpu_info as *mut u8, 64, v.pv.vcpu_info_mfn) }
    }
}

impl EvtchnDomain for Domain {
    fn domid(&self) -> u16 {
        self.id
    }

    fn ports(&self) -> &Mutex<PortTable> {
        &self.evtchn
    }
}

/// Acts on what raising an event asked for in `d`: kicks the vCPU that got an upcall, and
/// the vCPUs polling (Xen's `vcpu_kick` and `evtchn_check_pollers`).
pub fn notify(d: &Domain, n: Notify) {
    if let Some(v) = n.kick.and_then(|id| d.vcpus.get(id as usize)) {
        crate::sched::kick(v);
    }
    if let Some(port) = n.poll {
        for w in d.vcpus.iter() {
            if w.polling.load(Ordering::Acquire)
                && (w.poll_ports.is_empty() || w.poll_ports.contains(&port))
                && Some(w.id) != n.kick
            {
                crate::sched::kick(w);
            }
        }
    }
}

/// Marks `port` of `d` pending, notifying vCPU `vcpu` (Xen's `evtchn_port_set_pending`), and
/// wakes whoever waits for it.
pub fn raise(d: &Domain, port: u32, vcpu: u32) {
    let n = d.evtchn.lock().raise(d, port, vcpu);
    notify(d, n);
}

/// Marks `port` pending for `v` (its domain's port, notifying `v`).
pub fn set_pending(v: &Vcpu, port: u32) {
    raise(v.domain(), port, v.id);
}

/// Raises `virq` on `v` if the guest bound it (a global VIRQ where it is bound).
pub fn send_virq(v: &Vcpu, virq: u32) {
    let d = v.domain();
    let n = d.evtchn.lock().send_virq(d, v.id, virq);
    notify(d, n);
}

/// Whether `port` of `d` is pending (for `SCHEDOP_poll`).
pub fn is_pending(d: &Domain, port: u32) -> bool {
    d.evtchn.lock().is_pending(d, port)
}

/// Whether `v` has an upcall to take: pending and not masked.
pub fn upcall_due(v: &Vcpu) -> bool {
    if v.pv.vcpu_info == 0 || v.domain().relinquished.load(Ordering::Acquire) {
        return false;
    }
    // SAFETY: `vcpu_info` is the direct-map address of the vCPU's live vcpu_info (shared_info
    // or a registered page the hypervisor holds); bytes 0 and 1 are the upcall flag and mask.
    let (pending, mask) = unsafe {
        (
            (v.pv.vcpu_info as *const u8).read_volatile(),
            ((v.pv.vcpu_info + 1) as *const u8).read_volatile(),
        )
    };
    if let Some(hd) = v.domain().hvm.as_ref() {
        // HVM: the upcall mask plays no part (the guest's RFLAGS.IF gates the vector), but
        // there is nothing to deliver before the guest names a vector.
        return pending != 0 && crate::hvm::run::callback_vector(v, hd).is_some();
    }
    pending != 0 && mask == 0
}

/// On the way back to the guest: if the vCPU went down or its domain stopped, this CPU goes
/// idle instead; else, if an event upcall is due and the guest has an event callback, bounce
/// to it with events masked (Xen's softirq check and `test_all_events`).
pub fn check_events(v: &mut Vcpu, regs: &mut TrapFrame) {
    crate::sched::check_preempt(v, regs);
    deliver_upcall(v, regs);
}

/// Enters the guest's event callback (events masked) if an upcall is due and it has one.
pub fn deliver_upcall(v: &mut Vcpu, regs: &mut TrapFrame) {
    if v.pv.event_callback != 0 && upcall_due(v) {
        let eip = v.pv.event_callback;
        super::entry::deliver(
            v,
            regs,
            TrapBounce {
                eip,
                error_code: None,
                interrupt: true,
            },
        );
    }
}
