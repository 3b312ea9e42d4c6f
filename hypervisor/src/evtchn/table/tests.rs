//! The single-domain state machine, rule by rule, with Xen's errnos.

use super::*;
use crate::evtchn::testutil::{FifoGuest, TestDomain, TestPage};
use xen_abi::xen::{VIRQ_CONSOLE, VIRQ_DOM_EXC, VIRQ_TIMER};

#[test]
fn port_zero_is_reserved_and_allocation_is_lowest_first() {
    let mut t = PortTable::new(1);
    assert_eq!(t.status(0), Ok((stat::CLOSED, 0, 0)));
    assert_eq!(t.close(0, 0), Err(Errno::EINVAL));
    assert_eq!(t.alloc(PortState::Unbound { remote: 0 }), Ok(1));
    assert_eq!(t.alloc(PortState::Unbound { remote: 3 }), Ok(2));
    assert_eq!(t.status(2), Ok((stat::UNBOUND, 0, 3)));
    assert_eq!(t.close(0, 1), Ok(()));
    assert_eq!(t.status(1), Ok((stat::CLOSED, 0, 0)));
    assert_eq!(t.close(0, 1), Err(Errno::EINVAL));
    assert_eq!(t.alloc(PortState::Virq { virq: 0 }), Ok(1));
}

#[test]
fn validity_follows_buckets() {
    let mut t = PortTable::new(1);
    assert!(t.valid(63) && !t.valid(64));
    assert_eq!(t.status(4000), Err(Errno::EINVAL));
    for _ in 1..64 {
        t.alloc(PortState::Unbound { remote: 0 }).unwrap();
    }
    assert_eq!(t.alloc(PortState::Unbound { remote: 0 }), Ok(64));
    assert!(t.valid(127) && !t.valid(128));
}

#[test]
fn table_is_bounded() {
    let mut t = PortTable::new(1);
    for _ in 1..NR_PORTS_2L {
        t.alloc(PortState::Unbound { remote: 0 }).unwrap();
    }
    assert_eq!(
        t.alloc(PortState::Unbound { remote: 0 }),
        Err(Errno::ENOSPC)
    );
}

use crate::evtchn::NR_PORTS_2L;

#[test]
fn virq_bindings_follow_xen_rules() {
    let mut t = PortTable::new(2);
    let p = t.bind_virq(VIRQ_TIMER, 1).unwrap();
    assert_eq!(t.virq_port(1, VIRQ_TIMER), Some(p));
    assert_eq!(t.bind_virq(VIRQ_TIMER, 1), Err(Errno::EEXIST));
    assert_eq!(
        t.bind_virq(VIRQ_CONSOLE, 1),
        Err(Errno::EINVAL),
        "global VIRQs on vCPU 0 only"
    );
    assert_eq!(t.bind_virq(VIRQ_TIMER, 2), Err(Errno::ENOENT));
    assert_eq!(t.bind_virq(24, 0), Err(Errno::EINVAL));
    assert_eq!(t.status(p), Ok((stat::VIRQ, 1, VIRQ_TIMER)));
    t.close(0, p).unwrap();
    assert_eq!(t.virq_port(1, VIRQ_TIMER), None);
    assert!(t.bind_virq(VIRQ_TIMER, 1).is_ok(), "rebinding after close");
}

#[test]
fn loopback_interdomain_and_ipi_send_targets() {
    let mut t = PortTable::new(1);
    let a = t.alloc(PortState::Unbound { remote: 0 }).unwrap();
    assert_eq!(
        t.send_target(0, a),
        Ok(None),
        "sending on an unbound port does nothing"
    );
    assert_eq!(t.bind_loopback(0, 9), Err(Errno::EINVAL));
    let b = t.bind_loopback(0, a).unwrap();
    assert_eq!(t.send_target(0, b), Ok(Some((a, 0))));
    assert_eq!(t.send_target(0, a), Ok(Some((b, 0))));
    assert_eq!(t.status(b), Ok((stat::INTERDOMAIN, 0, 0)));
    assert_eq!(t.interdomain_peer(b), Some(a));
    assert_eq!(
        t.bind_loopback(0, a),
        Err(Errno::EINVAL),
        "already connected"
    );
    t.close(0, b).unwrap();
    assert_eq!(
        t.status(a).unwrap().0,
        stat::UNBOUND,
        "the peer is offered again"
    );
    let i = t.bind_ipi(0).unwrap();
    assert_eq!(t.send_target(0, i), Ok(Some((i, 0))));
    assert_eq!(t.bind_ipi(3), Err(Errno::ENOENT));
    assert_eq!(t.send_target(0, 4000), Err(Errno::EINVAL));
}

#[test]
fn alloc_unbound_resolves_domid_self_to_the_caller() {
    let mut t = PortTable::new(1);
    let p = t.alloc_unbound(4, DOMID_SELF).unwrap();
    assert_eq!(t.status(p), Ok((stat::UNBOUND, 0, 4)));
    let q = t.alloc_unbound(4, 9).unwrap();
    assert_eq!(
        t.port_status(q).unwrap().detail,
        StatusDetail::Unbound { dom: 9 }
    );
}

#[test]
fn bind_vcpu_rules() {
    let mut t = PortTable::new(2);
    let unbound = t.alloc_unbound(0, 1).unwrap();
    let ipi = t.bind_ipi(0).unwrap();
    let timer = t.bind_virq(VIRQ_TIMER, 0).unwrap();
    let dom_exc = t.bind_virq(VIRQ_DOM_EXC, 0).unwrap();
    let pirq = t.alloc(PortState::Pirq { pirq: 5 }).unwrap();
    let a = t.alloc_unbound(0, DOMID_SELF).unwrap();
    let inter = t.bind_loopback(0, a).unwrap();

    assert_eq!(t.bind_vcpu(unbound, 2), Err(Errno::ENOENT));
    assert_eq!(
        t.bind_vcpu(9999, 2),
        Err(Errno::ENOENT),
        "-ENOENT comes first"
    );
    assert_eq!(t.bind_vcpu(9999, 1), Err(Errno::EINVAL), "invalid port");
    assert_eq!(t.bind_vcpu(0, 1), Err(Errno::EINVAL), "reserved port");
    assert_eq!(t.bind_vcpu(60, 1), Err(Errno::EINVAL), "free port");
    assert_eq!(t.bind_vcpu(ipi, 1), Err(Errno::EINVAL), "IPIs stay put");
    assert_eq!(t.bind_vcpu(timer, 1), Err(Errno::EINVAL), "per-vCPU VIRQ");
    for p in [unbound, dom_exc, pirq, inter] {
        assert_eq!(t.bind_vcpu(p, 1), Ok(()), "port {p}");
        assert_eq!(t.notify_vcpu(p), Some(1));
    }
    assert_eq!(
        t.virq_port(0, VIRQ_DOM_EXC),
        Some(dom_exc),
        "a global VIRQ stays bound on vCPU 0"
    );
    assert_eq!(t.status(pirq), Ok((stat::PIRQ, 1, 5)));
    // Closing the moved global VIRQ unbinds it from vCPU 0's table.
    t.close(0, dom_exc).unwrap();
    assert_eq!(t.virq_port(0, VIRQ_DOM_EXC), None);
    assert_eq!(
        t.notify_vcpu(dom_exc),
        Some(0),
        "freed ports go back to vCPU 0"
    );
}

#[test]
fn set_priority_needs_fifo() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    let p = t.bind_ipi(0).unwrap();
    assert_eq!(
        t.set_priority(9999, 3),
        Err(Errno::EINVAL),
        "invalid port first"
    );
    assert_eq!(t.set_priority(p, 3), Err(Errno::ENOSYS), "2-level");
    let _g = FifoGuest::setup(&mut t, &d, 1);
    assert_eq!(t.priority(p), Some(7), "default priority after the switch");
    assert_eq!(t.set_priority(p, 16), Err(Errno::EINVAL));
    assert_eq!(t.set_priority(5, 3), Err(Errno::EACCES), "free port");
    assert_eq!(t.set_priority(0, 3), Err(Errno::EACCES), "reserved port");
    assert_eq!(t.set_priority(p, 15), Ok(()));
    assert_eq!(t.priority(p), Some(15));
    t.close(0, p).unwrap();
    assert_eq!(t.bind_ipi(0), Ok(p));
    assert_eq!(t.priority(p), Some(7), "binding resets the priority");
}

#[test]
fn unmask_of_closed_or_invalid_ports() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    assert_eq!(t.unmask(&d, 9999), Err(Errno::EINVAL));
    assert_eq!(
        t.unmask(&d, 3),
        Ok(Notify::NONE),
        "closed: accepted, nothing done"
    );
}

#[test]
fn raising_a_closed_port_does_nothing() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    assert_eq!(t.raise(&d, 3, 0), Notify::NONE);
    assert!(!d.pending_2l(3));
    let p = t.bind_ipi(0).unwrap();
    assert_eq!(t.raise(&d, p, 5), Notify::NONE, "no such vCPU");
    assert_eq!(
        t.raise(&d, p, 0),
        Notify {
            kick: Some(0),
            poll: Some(p)
        }
    );
    assert!(t.is_pending(&d, p) && !t.is_masked(&d, p));
    assert!(t.is_masked(&d, 7), "a closed port counts as masked");
}

#[test]
fn closing_clears_the_pending_bit() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    let p = t.bind_ipi(0).unwrap();
    let _ = t.raise(&d, p, 0);
    assert!(d.pending_2l(p));
    let mut pair = Pair::Same(Side {
        id: 0,
        table: &mut t,
        mem: &d,
    });
    interdomain::close(&mut pair, p).unwrap();
    assert!(!d.pending_2l(p));
}

#[test]
fn virqs_are_delivered_where_xen_delivers_them() {
    let d = TestDomain::new(2);
    let mut t = d.table.lock();
    let timer1 = t.bind_virq(VIRQ_TIMER, 1).unwrap();
    let console = t.bind_virq(VIRQ_CONSOLE, 0).unwrap();
    assert_eq!(
        t.send_virq(&d, 0, VIRQ_TIMER),
        Notify::NONE,
        "not bound on vCPU 0"
    );
    assert_eq!(
        t.send_virq(&d, 1, VIRQ_TIMER),
        Notify {
            kick: Some(1),
            poll: Some(timer1)
        }
    );
    t.bind_vcpu(console, 1).unwrap();
    assert_eq!(
        t.send_virq(&d, 0, VIRQ_CONSOLE).poll,
        Some(console),
        "a global VIRQ follows bind_vcpu"
    );
    assert_eq!(d.selector(1), 1, "on vCPU 1's selector");
    assert_eq!(d.selector(0), 0);
}

#[test]
fn fill_status_writes_only_the_member_xen_writes() {
    use xen_abi::event_channel::EvtchnStatus;
    let mut t = PortTable::new(2);
    let a = t.alloc_unbound(0, 7).unwrap();
    let b = t.alloc_unbound(0, DOMID_SELF).unwrap();
    let c = t.bind_loopback(0, b).unwrap();
    t.bind_vcpu(c, 1).unwrap();
    let ipi = t.bind_ipi(1).unwrap();

    let mut s = EvtchnStatus {
        port: a,
        u: [0xffff_ffff; 2],
        ..Default::default()
    };
    t.fill_status(&mut s).unwrap();
    assert_eq!((s.status, s.vcpu, s.unbound_dom()), (stat::UNBOUND, 0, 7));
    assert_eq!(
        s.u,
        [0xffff_0007, 0xffff_ffff],
        "rest of the union untouched"
    );

    let mut s = EvtchnStatus {
        port: c,
        u: [0xffff_ffff; 2],
        ..Default::default()
    };
    t.fill_status(&mut s).unwrap();
    assert_eq!((s.status, s.vcpu), (stat::INTERDOMAIN, 1));
    assert_eq!(s.interdomain(), (0, b));

    let mut s = EvtchnStatus {
        port: ipi,
        u: [5, 6],
        ..Default::default()
    };
    t.fill_status(&mut s).unwrap();
    assert_eq!((s.status, s.vcpu, s.u), (stat::IPI, 1, [5, 6]));

    let mut s = EvtchnStatus {
        port: 5000,
        ..Default::default()
    };
    assert_eq!(t.fill_status(&mut s), Err(Errno::EINVAL));
}

#[test]
fn init_control_checks_in_xens_order() {
    let d = TestDomain::new(2);
    let mut t = d.table.lock();
    let page = TestPage::new();
    let never = || -> Result<GuestMem, Errno> { panic!("must not map") };
    assert_eq!(t.init_control(&d, 2, 0, never), Err(Errno::ENOENT));
    assert_eq!(
        t.init_control(&d, 2, 4095, never),
        Err(Errno::ENOENT),
        "vCPU first"
    );
    assert_eq!(
        t.init_control(&d, 0, 4096 - 72 + 8, never),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        t.init_control(&d, 0, 12, never),
        Err(Errno::EINVAL),
        "alignment"
    );
    assert_eq!(
        t.init_control(&d, 0, 0, || Err(Errno::EINVAL)),
        Err(Errno::EINVAL),
        "a GFN that cannot be mapped"
    );
    assert!(
        !t.is_fifo(),
        "a failed first call leaves the domain 2-level"
    );
    assert_eq!(t.init_control(&d, 1, 4096 - 72, || Ok(page.mem(1))), Ok(17));
    assert!(
        t.is_fifo(),
        "the first call switches, whichever vCPU it is for"
    );
    assert_eq!(
        t.init_control(&d, 1, 0, never),
        Err(Errno::EINVAL),
        "already has a control block (Xen: -EINVAL, not -EEXIST)"
    );
    let other = TestPage::new();
    assert_eq!(t.init_control(&d, 0, 0, || Ok(other.mem(2))), Ok(17));
}

#[test]
fn expand_array_rules() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    let page = TestPage::new();
    assert_eq!(
        t.expand_array(&d, || Ok(page.mem(0))).map(|_| ()),
        Err(Errno::EOPNOTSUPP),
        "2-level"
    );
    let mut g = FifoGuest::setup(&mut t, &d, 0);
    assert!(g.expand(&mut t, &d).is_ok());
    assert_eq!(
        t.expand_array(&d, || Err(Errno::EINVAL)).map(|_| ()),
        Err(Errno::EINVAL)
    );
    for _ in 1..crate::evtchn::fifo::MAX_EVENT_ARRAY_PAGES {
        g.expand(&mut t, &d).unwrap();
    }
    assert_eq!(
        t.expand_array(&d, || panic!("must not map")).map(|_| ()),
        Err(Errno::ENOSPC)
    );
}

#[test]
fn fifo_raises_the_port_limit_to_2_pow_17() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    for _ in 1..NR_PORTS_2L {
        t.alloc_unbound(0, 0).unwrap();
    }
    assert_eq!(t.alloc_unbound(0, 0), Err(Errno::ENOSPC));
    let _g = FifoGuest::setup(&mut t, &d, 0);
    assert_eq!(
        t.alloc_unbound(0, 0),
        Ok(NR_PORTS_2L),
        "no event-array page needed to allocate"
    );
    let mut last = 0;
    while let Ok(p) = t.alloc_unbound(0, 0) {
        last = p;
    }
    assert_eq!(last, crate::evtchn::NR_PORTS_FIFO - 1);
    assert_eq!(t.alloc_unbound(0, 0), Err(Errno::ENOSPC));
}

#[test]
fn a_port_still_linked_is_not_reused() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    let g = FifoGuest::setup(&mut t, &d, 1);
    let p = t.bind_ipi(0).unwrap();
    let _ = t.raise(&d, p, 0);
    t.close(0, p).unwrap();
    assert_eq!(
        g.bits(p) & crate::evtchn::testutil::LINKED,
        crate::evtchn::testutil::LINKED
    );
    let q = t.bind_ipi(0).unwrap();
    assert_ne!(q, p, "busy: still on a queue the guest has not consumed");
    g.clear_linked(p);
    assert_eq!(t.bind_ipi(0), Ok(p));
}

#[test]
fn reset_bookkeeping() {
    let mut t = PortTable::new(1);
    assert_eq!(t.reset_start(true), Err(Errno::EBUSY), "nothing to resume");
    assert_eq!(t.reset_start(false), Ok(1));
    assert_eq!(
        t.reset_start(false),
        Err(Errno::EBUSY),
        "already in progress"
    );
    t.reset_suspend(65);
    assert_eq!(t.reset_start(true), Ok(65));
    let p = t.bind_ipi(0).unwrap();
    assert_eq!(t.reset_finish().map(|v| v.len()), Err(Errno::EAGAIN));
    t.close(0, p).unwrap();
    assert_eq!(
        t.reset_start(false),
        Ok(1),
        "a finished reset can start again"
    );
    assert_eq!(t.reset_finish().map(|v| v.len()), Ok(0));
}
