//! Raising events for a PV vCPU and delivering the upcall (Xen's `send_guest_vcpu_virq`,
//! `evtchn_port_set_pending` and the `test_all_events` check on the way back to the guest).

use super::bounce::TrapBounce;
use crate::domain::Vcpu;
use crate::evtchn::two_level::Shared;
use xenolith_arch::layout::phys_to_virt;
use xenolith_arch::trap::TrapFrame;

/// The 2-level view of `v`'s domain's shared_info and `v`'s vcpu_info.
pub fn shared(v: &Vcpu) -> Shared {
    Shared {
        shared_info: phys_to_virt(v.domain().shared_info_mfn << 12) as usize,
        vcpu_info: v.pv.vcpu_info as usize,
    }
}

/// Marks `port` pending for `v` (2-level) and wakes whoever waits for it: `v` if it has a new
/// upcall, and every vCPU of the domain in `SCHEDOP_poll` (Xen's `evtchn_port_set_pending`
/// and `poll_mask` check). Returns true if `v` has a new upcall.
pub fn set_pending(v: &Vcpu, port: u32) -> bool {
    if v.pv.vcpu_info == 0 || port >= crate::evtchn::NR_PORTS_2L {
        return false;
    }
    // SAFETY: the domain's shared_info and the vCPU's vcpu_info are live, direct-mapped
    // pages the hypervisor keeps for the domain's lifetime; port < 4096.
    let upcall = unsafe { shared(v).set_pending(port) };
    wake_for_event(v, upcall);
    upcall
}

/// Kicks `v` if it has a new upcall, and the domain's polling vCPUs.
fn wake_for_event(v: &Vcpu, upcall: bool) {
    if upcall {
        crate::sched::kick(v);
    }
    for w in v.domain().vcpus.iter() {
        if w.polling.load(core::sync::atomic::Ordering::Acquire) && !(upcall && w.id == v.id) {
            crate::sched::kick(w);
        }
    }
}

/// `EVTCHNOP_unmask` of `port`, whose notified vCPU is `v` (Xen's `evtchn_2l_unmask`): a
/// pending event becomes an upcall for `v`.
pub fn unmask(v: &Vcpu, port: u32) {
    if v.pv.vcpu_info == 0 || port >= crate::evtchn::NR_PORTS_2L {
        return;
    }
    // SAFETY: as in `set_pending`.
    if unsafe { shared(v).unmask(port) } {
        crate::sched::kick(v);
    }
}

/// Raises `virq` on `v` if the guest bound it.
pub fn send_virq(v: &Vcpu, virq: u32) {
    let port = v.domain().evtchn.lock().virq_port(v.id, virq);
    if let Some(port) = port {
        set_pending(v, port);
    }
}

/// Whether `v` has an upcall to take: pending and not masked.
pub fn upcall_due(v: &Vcpu) -> bool {
    if v.pv.vcpu_info == 0 {
        return false;
    }
    // SAFETY: as in `set_pending`.
    let (pending, mask) = unsafe { shared(v).upcall_state() };
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
