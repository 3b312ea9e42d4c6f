//! The FIFO ABI against a model of the Linux consumer: queue order, linking, masking, the
//! carry-over from 2-level, hostile guests, and races between the guest consuming and the
//! hypervisor producing, both as explicit interleavings and with real threads.

use super::*;
use crate::evtchn::testutil::{BUSY, FifoGuest, LINKED, MASKED, PENDING, TestDomain, TestPage};
use crate::evtchn::{PortState, PortTable};
use alloc::vec;
use alloc::vec::Vec;
use xen_abi::event_channel::EVTCHN_FIFO_LINK_MASK;

/// A 1..=`vcpus` vCPU domain switched to FIFO with one event-array page.
fn fifo_domain(vcpus: u32) -> (TestDomain, FifoGuest) {
    let d = TestDomain::new(vcpus);
    let g = FifoGuest::setup(&mut d.table.lock(), &d, 1);
    (d, g)
}

/// `n` IPI ports on `vcpu`.
fn ipis(t: &mut PortTable, vcpu: u32, n: usize) -> Vec<u32> {
    (0..n).map(|_| t.bind_ipi(vcpu).unwrap()).collect()
}

#[test]
fn a_priority_queue_is_delivered_in_send_order() {
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let p = ipis(&mut t, 0, 4);
    for &port in [p[2], p[0], p[3], p[1]].iter() {
        let _ = t.raise(&d, port, 0);
    }
    assert_eq!(g.drain(0), vec![p[2], p[0], p[3], p[1]]);
}

#[test]
fn higher_priorities_are_delivered_first() {
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let p = ipis(&mut t, 0, 5);
    t.set_priority(p[0], 9).unwrap();
    t.set_priority(p[1], 3).unwrap();
    t.set_priority(p[3], 3).unwrap();
    t.set_priority(p[4], 0).unwrap();
    for &port in &p {
        let _ = t.raise(&d, port, 0);
    }
    assert_eq!(
        g.ready(0).load(Ordering::SeqCst),
        (1 << 0) | (1 << 3) | (1 << 7) | (1 << 9)
    );
    // priority 0, then 3 (in send order), then the default 7, then 9
    assert_eq!(g.drain(0), vec![p[4], p[1], p[3], p[2], p[0]]);
}

#[test]
fn events_chain_through_link_with_one_ready_bit_and_one_kick() {
    let (d, g) = fifo_domain(1);
    let mut t = d.table.lock();
    let p = ipis(&mut t, 0, 3);
    let first = t.raise(&d, p[0], 0);
    assert_eq!(
        first,
        Notify {
            kick: Some(0),
            poll: Some(p[0])
        }
    );
    assert_eq!(
        t.raise(&d, p[1], 0),
        Notify {
            kick: None,
            poll: Some(p[1])
        },
        "linked behind the tail: no new READY bit, no kick"
    );
    let _ = t.raise(&d, p[2], 0);
    assert_eq!(g.head(0, 7).load(Ordering::SeqCst), p[0]);
    assert_eq!(g.bits(p[0]), PENDING | LINKED | p[1]);
    assert_eq!(g.bits(p[1]), PENDING | LINKED | p[2]);
    assert_eq!(g.bits(p[2]), PENDING | LINKED);
    assert_eq!(t.abi().fifo().unwrap().tail(0, 7), Some(p[2]));
    assert_eq!(g.ready(0).load(Ordering::SeqCst), 1 << 7);
    assert_eq!(d.upcall(0), 1);
}

#[test]
fn a_pending_port_is_not_queued_twice() {
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let p = t.bind_ipi(0).unwrap();
    let _ = t.raise(&d, p, 0);
    assert_eq!(
        t.raise(&d, p, 0),
        Notify::NONE,
        "already pending and linked"
    );
    assert_eq!(g.drain(0), vec![p]);
    assert_eq!(
        t.raise(&d, p, 0),
        Notify {
            kick: None,
            poll: Some(p)
        },
        "consumed: queued again (the upcall flag is still up: no kick)"
    );
    assert_eq!(g.drain(0), vec![p]);
}

#[test]
fn a_masked_pending_port_is_not_queued_until_unmasked() {
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let p = t.bind_ipi(0).unwrap();
    g.mask(p);
    assert_eq!(
        t.raise(&d, p, 0),
        Notify {
            kick: None,
            poll: Some(p)
        }
    );
    assert_eq!(g.bits(p), PENDING | MASKED, "pending, not linked");
    assert_eq!(g.ready(0).load(Ordering::SeqCst), 0);
    assert!(t.is_pending(&d, p) && t.is_masked(&d, p));
    assert!(
        !g.try_unmask_locally(p),
        "pending: the guest must ask the hypervisor"
    );
    assert_eq!(
        t.unmask(&d, p),
        Ok(Notify {
            kick: Some(0),
            poll: None
        })
    );
    assert_eq!(g.bits(p), PENDING | LINKED);
    assert_eq!(g.drain(0), vec![p]);
    // Unmasking a port that is not pending only clears the mask.
    g.mask(p);
    assert_eq!(t.unmask(&d, p), Ok(Notify::NONE));
    assert_eq!(g.bits(p), 0);
}

#[test]
fn a_vcpu_without_control_block_drops_the_event_without_marking_it_pending() {
    let d = TestDomain::new(2);
    let mut t = d.table.lock();
    let mut g = FifoGuest::new(2);
    g.init_control(&mut t, &d, 0).unwrap();
    let _ = g.expand(&mut t, &d).unwrap();
    let p = t.bind_ipi(1).unwrap();
    assert_eq!(t.raise(&d, p, 1), Notify::NONE);
    assert_eq!(g.bits(p), 0);
}

#[test]
fn events_raised_before_their_page_exists_arrive_when_it_is_added() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    let mut g = FifoGuest::setup(&mut t, &d, 0);
    let p = t.bind_ipi(0).unwrap();
    assert_eq!(t.raise(&d, p, 0), Notify::NONE, "no word yet: deferred");
    assert!(!t.is_pending(&d, p) && t.is_masked(&d, p));
    let notes = g.expand(&mut t, &d).unwrap();
    assert_eq!(
        notes,
        vec![Notify {
            kick: Some(0),
            poll: Some(p)
        }]
    );
    assert_eq!(g.drain(0), vec![p]);
    assert!(g.expand(&mut t, &d).unwrap().is_empty(), "replayed once");
}

#[test]
fn switching_from_2_level_carries_pending_events_over() {
    let d = TestDomain::new(1);
    let mut t = d.table.lock();
    let a = t.bind_ipi(0).unwrap();
    let b = t.bind_ipi(0).unwrap();
    let c = t.bind_ipi(0).unwrap();
    let _ = t.raise(&d, a, 0);
    let _ = t.raise(&d, c, 0);
    d.clear_upcall(0);
    let mut g = FifoGuest::setup(&mut t, &d, 0);
    for p in [a, b, c] {
        assert_eq!(t.priority(p), Some(7));
    }
    let notes = g.expand(&mut t, &d).unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(g.drain(0), vec![a, c], "in port order, b was not pending");
}

#[test]
fn a_port_moved_to_another_queue_does_not_drag_its_old_queue_along() {
    // A is the tail of queue 7; the guest consumes it; A moves to priority 3 and is raised
    // again. Queue 7's tail must be forgotten, or B (priority 7) would be linked behind A,
    // which now sits on queue 3.
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let (a, b) = (t.bind_ipi(0).unwrap(), t.bind_ipi(0).unwrap());
    let _ = t.raise(&d, a, 0);
    assert_eq!(g.drain(0), vec![a]);
    t.set_priority(a, 3).unwrap();
    let _ = t.raise(&d, a, 0);
    let _ = t.raise(&d, b, 0);
    assert_eq!(
        g.bits(a) & EVTCHN_FIFO_LINK_MASK,
        0,
        "nothing linked behind A"
    );
    assert_eq!(g.head(0, 7).load(Ordering::SeqCst), b);
    assert_eq!(g.drain(0), vec![a, b]);
}

#[test]
fn bind_vcpu_moves_future_events_to_the_other_vcpus_queue() {
    use crate::evtchn::interdomain::{bind_interdomain, send};
    use crate::evtchn::{Pair, Side};
    let (d, mut g) = fifo_domain(2);
    let mut t = d.table.lock();
    let a = t.alloc_unbound(0, 0).unwrap();
    let mut pair = Pair::Same(Side {
        id: 0,
        table: &mut t,
        mem: &d,
    });
    let (b, _) = bind_interdomain(&mut pair, a).unwrap();
    assert_eq!(
        g.drain(0),
        vec![b],
        "the conservative notification of the new port"
    );
    let _ = send(&mut pair, b).unwrap();
    assert_eq!(g.drain(0), vec![a]);
    pair.local().table.bind_vcpu(a, 1).unwrap();
    let sent = send(&mut pair, b).unwrap();
    assert_eq!(sent.notify.kick, Some(1));
    assert_eq!(g.drain(1), vec![a]);
    assert!(g.drain(0).is_empty());
    assert_eq!(
        t.abi().fifo().unwrap().tail(0, 7),
        Some(0),
        "vCPU 0's tail forgotten"
    );
}

// --- Interleavings of the guest consumer and the hypervisor producer -------------------------

/// The guest took READY and read HEAD = A, then each step below is run in the given order.
/// Whatever the order, both events are handled exactly once.
#[test]
fn guest_dequeuing_the_tail_while_the_hypervisor_links_behind_it_loses_nothing() {
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Hypervisor: raise B (links behind A if A is still LINKED).
        RaiseB,
        /// Guest: `clear_linked(A)`, then finish with A.
        UnlinkA,
    }
    for order in [[Step::RaiseB, Step::UnlinkA], [Step::UnlinkA, Step::RaiseB]] {
        let (d, mut g) = fifo_domain(1);
        let mut t = d.table.lock();
        let (a, b) = (t.bind_ipi(0).unwrap(), t.bind_ipi(0).unwrap());
        let _ = t.raise(&d, a, 0);

        let mut ready = g.take_ready(0);
        assert_eq!(g.load_head(0, 7), a);
        for step in order {
            match step {
                Step::RaiseB => {
                    let _ = t.raise(&d, b, 0);
                }
                Step::UnlinkA => {
                    let next = g.clear_linked(a);
                    if next == 0 {
                        ready &= !(1 << 7);
                    }
                    g.handle(0, a);
                    g.set_local_head(0, 7, next);
                }
            }
        }
        // The rest of Linux's loop.
        ready |= g.take_ready(0);
        while ready != 0 {
            let q = ready.trailing_zeros() as usize;
            g.consume_one(0, q, &mut ready);
            ready |= g.take_ready(0);
        }
        assert_eq!(g.delivered[0], vec![a, b], "order {order:?}");
        assert_eq!(g.bits(a) & (PENDING | LINKED), 0);
        assert_eq!(g.bits(b) & (PENDING | LINKED), 0);
    }
}

/// The finest interleaving: the guest unlinks A between the hypervisor's read of A's word and
/// its compare-exchange. The exchange fails, the retry sees A unlinked, and B becomes the new
/// head with its READY bit, which the guest then finds.
#[test]
fn guest_unlinking_the_tail_inside_the_link_protocol_loses_nothing() {
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let (a, b) = (t.bind_ipi(0).unwrap(), t.bind_ipi(0).unwrap());
    let _ = t.raise(&d, a, 0);
    let mut ready = g.take_ready(0);
    assert_eq!(g.load_head(0, 7), a);

    let mut next_of_a = None;
    let mut guest_step = |_: &AtomicU32| {
        if next_of_a.is_none() {
            next_of_a = Some(g.clear_linked(a));
        }
    };
    let notify = raise_observed(&mut t, &d, b, &mut guest_step);
    assert_eq!(next_of_a, Some(0), "the guest saw A as the last event");
    assert_eq!(notify.poll, Some(b));
    assert_eq!(g.head(0, 7).load(Ordering::SeqCst), b, "B is the new head");
    assert_eq!(g.bits(a) & BUSY, 0, "BUSY released");

    ready &= !(1 << 7);
    g.handle(0, a);
    g.set_local_head(0, 7, 0);
    ready |= g.take_ready(0);
    assert_eq!(ready, 1 << 7, "READY was raised again for B");
    while ready != 0 {
        g.consume_one(0, 7, &mut ready);
        ready |= g.take_ready(0);
    }
    assert_eq!(g.delivered[0], vec![a, b]);
}

/// Raises `port` on vCPU 0 through the FIFO with `hook` run before each compare-exchange.
fn raise_observed(
    t: &mut PortTable,
    d: &TestDomain,
    port: u32,
    hook: &mut dyn FnMut(&AtomicU32),
) -> Notify {
    t.with_fifo_port(port, |fifo, st| {
        fifo.set_pending_observed(d, port, st, 0, hook)
    })
    .unwrap()
}

/// The guest masks the tail while the hypervisor links behind it: one retry under BUSY, and
/// the guest cannot unmask locally while BUSY is set.
#[test]
fn guest_masking_the_tail_inside_the_link_protocol_costs_one_retry() {
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let (a, b) = (t.bind_ipi(0).unwrap(), t.bind_ipi(0).unwrap());
    let _ = t.raise(&d, a, 0);
    let mut calls = 0;
    let mut hook = |_: &AtomicU32| {
        calls += 1;
        match calls {
            1 => g.mask(a),
            _ => assert!(!g.try_unmask_locally(a), "BUSY holds the guest off"),
        }
    };
    let _ = raise_observed(&mut t, &d, b, &mut hook);
    assert_eq!(calls, 2);
    assert_eq!(g.bits(a), PENDING | MASKED | LINKED | b);
    // A is masked: Linux skips it but follows its link to B.
    assert_eq!(g.drain(0), vec![b]);
}

// --- Hostile guests --------------------------------------------------------------------------

/// A small deterministic generator for the fuzz tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn corrupted_links_and_heads_only_hurt_the_guest_that_wrote_them() {
    let (d, g) = fifo_domain(2);
    let mut t = d.table.lock();
    let p = ipis(&mut t, 0, 8);
    for &port in &p[..4] {
        let _ = t.raise(&d, port, 0);
    }
    // Garbage everywhere the hypervisor might be tempted to follow: LINK fields pointing past
    // the array and at each other in a cycle, queue heads, READY.
    g.word(p[3])
        .store(PENDING | LINKED | EVTCHN_FIFO_LINK_MASK, Ordering::SeqCst);
    g.word(p[1])
        .store(PENDING | LINKED | p[0], Ordering::SeqCst);
    g.word(p[0])
        .store(PENDING | LINKED | p[1], Ordering::SeqCst);
    for q in 0..16 {
        g.head(0, q).store(0xdead_beef, Ordering::SeqCst);
    }
    g.ready(0).store(u32::MAX, Ordering::SeqCst);
    for &port in &p {
        let _ = t.raise(&d, port, 0);
        let _ = t.unmask(&d, port);
        t.set_priority(port, port % 16).unwrap();
        let _ = t.raise(&d, port, 1);
    }
    assert!(
        g.controls
            .iter()
            .chain(&g.array)
            .all(TestPage::guards_intact)
    );
    assert!(d.shared.guards_intact() && d.vcpu_pages.iter().all(TestPage::guards_intact));
}

#[test]
fn random_guest_writes_never_make_the_hypervisor_loop_or_stray() {
    let (d, mut g) = fifo_domain(2);
    let mut t = d.table.lock();
    let _ = g.expand(&mut t, &d).unwrap();
    let ports = ipis(&mut t, 0, 40);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let port = ports[rng.below(ports.len() as u64) as usize];
        match rng.below(8) {
            // The guest writes anything anywhere in its pages.
            0 => {
                let w = g.word(rng.below(2048) as u32);
                w.store(rng.next() as u32, Ordering::SeqCst);
            }
            1 => {
                let v = rng.below(2) as u32;
                g.head(v, rng.below(16) as usize)
                    .store(rng.next() as u32, Ordering::SeqCst);
            }
            2 => {
                let v = rng.below(2) as u32;
                g.ready(v).store(rng.next() as u32, Ordering::SeqCst);
            }
            // The hypervisor goes on with its business.
            3 | 4 => {
                let _ = t.raise(&d, port, rng.below(2) as u32);
            }
            5 => {
                let _ = t.unmask(&d, port);
            }
            6 => {
                let _ = t.set_priority(port, rng.below(16) as u32);
            }
            _ => {
                let _ = t.bind_vcpu(port, rng.below(2) as u32);
            }
        }
    }
    assert!(
        g.controls
            .iter()
            .chain(&g.array)
            .all(TestPage::guards_intact)
    );
}

// --- Real concurrency ------------------------------------------------------------------------

/// A guest thread consumes while the hypervisor (this thread, as the table lock would make
/// it) raises: every event raised is handled after it was raised. Each port carries a
/// sequence number the producer bumps before raising; the consumer records the number it
/// sees after clearing PENDING. If no event is lost, the last number seen is the last one
/// written.
#[test]
fn concurrent_consumer_sees_every_last_event() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    let (d, g) = fifo_domain(1);
    let mut t = d.table.lock();
    let ports = ipis(&mut t, 0, 32);
    for (i, &p) in ports.iter().enumerate() {
        t.set_priority(p, (i % 4) as u32 * 5).unwrap();
    }
    let counters =
        || -> Arc<Vec<AtomicU32>> { Arc::new((0..64).map(|_| AtomicU32::new(0)).collect()) };
    let (seq, seen) = (counters(), counters());
    let started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));

    let consumer = {
        let (seq, seen, started, stop) = (seq.clone(), seen.clone(), started.clone(), stop.clone());
        let mut g = g;
        std::thread::spawn(move || {
            started.store(true, Ordering::SeqCst);
            // Events handled while the producer was still producing.
            let mut alongside = 0;
            loop {
                let finished = stop.load(Ordering::SeqCst);
                let mut ready = g.take_ready(0);
                while ready != 0 {
                    let q = ready.trailing_zeros() as usize;
                    let port = g.load_head(0, q);
                    let next = g.clear_linked(port);
                    if next == 0 {
                        ready &= !(1 << q);
                    }
                    let w = g.word(port);
                    if w.load(Ordering::SeqCst) & (PENDING | MASKED) == PENDING {
                        w.fetch_and(!PENDING, Ordering::SeqCst);
                        let n = seq[port as usize].load(Ordering::SeqCst);
                        seen[port as usize].store(n, Ordering::SeqCst);
                        if !finished {
                            alongside += 1;
                        }
                    }
                    g.set_local_head(0, q, next);
                    ready |= g.take_ready(0);
                }
                if finished {
                    break alongside;
                }
                core::hint::spin_loop();
            }
        })
    };

    while !started.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    let mut rng = Rng(7);
    for _ in 0..100_000 {
        let p = ports[rng.below(ports.len() as u64) as usize];
        seq[p as usize].fetch_add(1, Ordering::SeqCst);
        let _ = t.raise(&d, p, 0);
        // Give the consumer a chance to get between two raises.
        for _ in 0..rng.below(64) {
            core::hint::spin_loop();
        }
    }
    stop.store(true, Ordering::SeqCst);
    let alongside = consumer.join().unwrap();
    assert!(alongside > 0, "the consumer ran while events were produced");
    for &p in &ports {
        assert_eq!(
            seen[p as usize].load(Ordering::SeqCst),
            seq[p as usize].load(Ordering::SeqCst),
            "port {p}: last event lost"
        );
    }
}

/// A guest thread flips random bits in its event words and control block as fast as it can
/// while the hypervisor raises events: every hypervisor operation returns, nothing outside the
/// guest's pages changes.
#[test]
fn a_concurrently_hostile_guest_cannot_stall_the_hypervisor() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    let (d, g) = fifo_domain(1);
    let mut t = d.table.lock();
    let ports = ipis(&mut t, 0, 16);
    let stop = Arc::new(AtomicBool::new(false));
    let g = Arc::new(g);
    let vandal = {
        let (g, stop) = (g.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(99);
            while !stop.load(Ordering::SeqCst) {
                let bit = 1u32 << rng.below(32);
                match rng.below(3) {
                    0 => g
                        .word(1 + rng.below(20) as u32)
                        .fetch_xor(bit, Ordering::SeqCst),
                    1 => g
                        .head(0, rng.below(16) as usize)
                        .fetch_xor(bit, Ordering::SeqCst),
                    _ => g.ready(0).fetch_xor(bit, Ordering::SeqCst),
                };
            }
        })
    };
    let mut rng = Rng(3);
    for _ in 0..100_000 {
        let p = ports[rng.below(ports.len() as u64) as usize];
        let _ = t.raise(&d, p, 0);
        if rng.below(4) == 0 {
            let _ = t.unmask(&d, p);
        }
    }
    stop.store(true, Ordering::SeqCst);
    vandal.join().unwrap();
    assert!(
        g.controls
            .iter()
            .chain(&g.array)
            .all(TestPage::guards_intact)
    );
}

#[test]
fn closing_only_clears_pending_and_leaves_unlinking_to_the_guest() {
    let (d, mut g) = fifo_domain(1);
    let mut t = d.table.lock();
    let (a, b) = (t.bind_ipi(0).unwrap(), t.bind_ipi(0).unwrap());
    let _ = t.raise(&d, a, 0);
    let _ = t.raise(&d, b, 0);
    t.close(0, a).unwrap();
    assert_eq!(g.bits(a), LINKED | b, "still linked, not pending");
    assert_eq!(
        g.drain(0),
        vec![b],
        "the guest skips the closed port, follows its link"
    );
    assert_eq!(t.get(a).map(|p| p.state), Some(PortState::Free));
}
