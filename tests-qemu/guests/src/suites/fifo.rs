//! `fifo`: the FIFO event-channel ABI (`EVTCHNOP_init_control`, `EVTCHNOP_expand_array`,
//! `EVTCHNOP_set_priority`) seen from the guest: the argument checks under 2-level and at the
//! switch, the control block's READY bits and HEADs, the LINK chains in the event array, a
//! consumer written like Linux's `events_fifo.c` (per READY priority: take HEAD, walk LINK,
//! clear LINKED/PENDING) running in the event upcall, per-port masking and requeue on
//! `EVTCHNOP_unmask`.
//!
//! Switching to FIFO is one-way for a domain, so the switch comes after every 2-level check,
//! and the suite leaves the domain with its ports closed, events masked and `events.rs`'s
//! upcall handler registered again (only `smp` follows in `suites=all`).
//!
//! Ports are reported by label (`A`..`D` IPIs, `L` the receiving end of a loopback
//! interdomain channel, `R` its other end), never by number.

use core::fmt::{self, Write};
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use xen_abi::callback::{CALLBACKOP_register, CALLBACKTYPE_event, CallbackRegister};
use xen_abi::errno::Errno;
use xen_abi::event_channel::{
    EVTCHN_FIFO_LINK_BITS, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_LINKED, EVTCHN_FIFO_MASKED,
    EVTCHN_FIFO_MAX_QUEUES, EVTCHN_FIFO_PENDING, EVTCHNOP_expand_array, EVTCHNOP_init_control,
    EVTCHNOP_set_priority, EVTCHNSTAT_interdomain, EVTCHNSTAT_ipi, EvtchnExpandArray,
    EvtchnFifoControlBlock, EvtchnInitControl, EvtchnSetPriority,
};
use xen_abi::hypercall as nr;
use xen_abi::xen::StartInfo;

use crate::events as ev;
use crate::hypercall as hc;
use crate::mm;
use crate::verdict::{Hex, Rc, Suite};

const EINVAL: i64 = Rc::err(Errno::EINVAL);
const ENOENT: i64 = Rc::err(Errno::ENOENT);
const ENOSYS: i64 = Rc::err(Errno::ENOSYS);
const EACCES: i64 = Rc::err(Errno::EACCES);
const EOPNOTSUPP: i64 = Rc::err(Errno::EOPNOTSUPP);

const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;

/// Event words in the one event-array page the suite adds.
const WORDS: u32 = 4096 / 4;
/// Where the control block lives in its page: the highest offset Xen accepts
/// (`PAGE_SIZE - sizeof(evtchn_fifo_control_block)`).
const CB_OFFSET: u32 = 4096 - size_of::<EvtchnFifoControlBlock>() as u32;
/// A port no domain has.
const BAD_PORT: u32 = 100_000;
/// A machine frame far beyond any RAM the test machines have (16 TiB).
const BAD_MFN: u64 = 1 << 32;
/// One millisecond in ns.
const MS: u64 = 1_000_000;
/// How long to wait for an upcall that must come.
const WAIT: u64 = 300 * MS;

/// A page of the image handed to the hypervisor.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The page holding vCPU 0's control block (at [`CB_OFFSET`]).
static mut CB_PAGE: Page = Page([0; 4096]);
/// Event-array page 0 (ports 0..1023).
static mut ARRAY_PAGE: Page = Page([0; 4096]);

/// The machine frame of an image page.
fn mfn_of(si: &StartInfo, va: u64) -> u64 {
    mm::p2m(si)[mm::va_to_pfn(va) as usize]
}

/// The event word of `port` (< [`WORDS`]).
fn word(port: u32) -> &'static AtomicU32 {
    assert!(port < WORDS);
    // SAFETY: ARRAY_PAGE is a static page; the hypervisor updates its words atomically too and
    // nothing accesses it as a Rust object.
    unsafe { AtomicU32::from_ptr((&raw mut ARRAY_PAGE.0).cast::<u32>().add(port as usize)) }
}

/// The control block's `ready` word.
fn cb_ready() -> &'static AtomicU32 {
    // SAFETY: the control block lies within CB_PAGE at a 8-aligned offset; the hypervisor sets
    // bits in it atomically.
    unsafe {
        AtomicU32::from_ptr(
            (&raw mut CB_PAGE.0)
                .cast::<u8>()
                .add(CB_OFFSET as usize)
                .cast(),
        )
    }
}

/// The control block's HEAD of queue `q`.
fn cb_head(q: usize) -> u32 {
    // SAFETY: as for cb_ready(); head[q] (q < 16) is within the block; volatile because the
    // hypervisor writes it.
    unsafe {
        let cb = (&raw mut CB_PAGE.0)
            .cast::<u8>()
            .add(CB_OFFSET as usize)
            .cast::<EvtchnFifoControlBlock>();
        ptr::read_volatile(&raw const (*cb).head[q])
    }
}

// ---------------------------------------------------------------------------------------------
// Hypercalls.

/// `event_channel_op(cmd, arg)` on a local structure.
fn evtchn_op<T>(cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: `arg` is the structure `cmd` reads and writes (the callers pick the pairing).
    unsafe { hc::event_channel_op(cmd, (arg as *mut T).cast()) }
}

/// `EVTCHNOP_init_control`: (rc, link_bits as found afterwards; 0xaa going in).
fn init_control(gfn: u64, offset: u32, vcpu: u32) -> (i64, u8) {
    let mut a = EvtchnInitControl {
        control_gfn: gfn,
        offset,
        vcpu,
        link_bits: 0xaa,
        _pad: [0; 7],
    };
    let rc = evtchn_op(EVTCHNOP_init_control, &mut a);
    (rc, a.link_bits)
}

/// `EVTCHNOP_expand_array`.
fn expand_array(gfn: u64) -> i64 {
    let mut a = EvtchnExpandArray { array_gfn: gfn };
    evtchn_op(EVTCHNOP_expand_array, &mut a)
}

/// `EVTCHNOP_set_priority`.
fn set_priority(port: u32, priority: u32) -> i64 {
    let mut a = EvtchnSetPriority { port, priority };
    evtchn_op(EVTCHNOP_set_priority, &mut a)
}

// ---------------------------------------------------------------------------------------------
// The FIFO upcall: Linux's consume loop.

crate::events::upcall_entry!("pvtest_fifo", "pvtest_fifo_entry", fifo_handler);

unsafe extern "C" {
    /// The FIFO event callback entry point.
    static pvtest_fifo_entry: u8;
}

/// Upcalls taken since the last [`reset`].
static UPCALLS: AtomicU32 = AtomicU32::new(0);
/// Ports consumed (pending and unmasked) since the last [`reset`], in order.
static ORDER: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];
/// How many entries of [`ORDER`] are used (may exceed its length).
static ORDER_LEN: AtomicU32 = AtomicU32::new(0);
/// Linked ports found not pending, masked, or outside the array page.
static ODD: AtomicU32 = AtomicU32::new(0);
/// The consumer's own HEAD per queue (Linux's `cpu_queue.head`): 0 means "read the control
/// block's HEAD".
static LOCAL_HEAD: [AtomicU32; EVTCHN_FIFO_MAX_QUEUES] =
    [const { AtomicU32::new(0) }; EVTCHN_FIFO_MAX_QUEUES];

/// Linux's `consume_one_event` for queue `q`.
fn consume_one(q: usize, ready: &mut u32) {
    let mut head = LOCAL_HEAD[q].load(Ordering::SeqCst);
    if head == 0 {
        head = cb_head(q);
    }
    let port = head;
    if port == 0 || port >= WORDS {
        ODD.fetch_add(1, Ordering::SeqCst);
        *ready &= !(1 << q);
        LOCAL_HEAD[q].store(0, Ordering::SeqCst);
        return;
    }
    // clear_linked(): drop LINKED and the link, keep the rest.
    let old = word(port).fetch_and(!(LINKED | EVTCHN_FIFO_LINK_MASK), Ordering::SeqCst);
    let next = old & EVTCHN_FIFO_LINK_MASK;
    if next == 0 {
        *ready &= !(1 << q);
    }
    if old & PENDING != 0 && old & MASKED == 0 {
        // The "handler": acknowledge (clear PENDING) and record.
        word(port).fetch_and(!PENDING, Ordering::SeqCst);
        let i = ORDER_LEN.fetch_add(1, Ordering::SeqCst) as usize;
        if i < ORDER.len() {
            ORDER[i].store(port, Ordering::SeqCst);
        }
    } else {
        ODD.fetch_add(1, Ordering::SeqCst);
    }
    LOCAL_HEAD[q].store(next, Ordering::SeqCst);
}

/// Linux's `__evtchn_fifo_handle_events`, bounded so that a broken queue cannot hang the guest.
fn consume_all() {
    let mut ready = cb_ready().swap(0, Ordering::SeqCst);
    let mut budget = 256;
    while ready != 0 && budget > 0 {
        budget -= 1;
        let q = ready.trailing_zeros() as usize;
        if q >= EVTCHN_FIFO_MAX_QUEUES {
            ODD.fetch_add(1, Ordering::SeqCst);
            break;
        }
        consume_one(q, &mut ready);
        ready |= cb_ready().swap(0, Ordering::SeqCst);
    }
}

extern "C" fn fifo_handler() {
    let vi = ev::vcpu_info();
    // SAFETY: vi is the mapped vcpu_info; the guest clears its own pending flag before
    // consuming.
    unsafe { ptr::write_volatile(&raw mut (*vi).evtchn_upcall_pending, 0) };
    UPCALLS.fetch_add(1, Ordering::SeqCst);
    consume_all();
}

/// Forgets what the upcalls recorded.
fn reset() {
    UPCALLS.store(0, Ordering::SeqCst);
    ORDER_LEN.store(0, Ordering::SeqCst);
    ODD.store(0, Ordering::SeqCst);
}

/// Registers `entry` as the event callback.
fn register_callback(entry: u64) -> i64 {
    let cb = CallbackRegister {
        type_: CALLBACKTYPE_event,
        flags: 0,
        _pad0: 0,
        address: entry,
    };
    // SAFETY: Xen reads the callback_register; the entry point takes Xen's bounce frame and
    // returns with HYPERVISOR_iret.
    unsafe {
        hc::hypercall3(
            nr::callback_op,
            u64::from(CALLBACKOP_register),
            &cb as *const _ as u64,
            0,
        )
    }
}

/// Unmasks events and pokes the hypervisor until an upcall came (or `budget_ns` passed), then
/// 10 ms more for any further upcall, and masks events again.
fn take_upcalls(budget_ns: u64) {
    let start = ev::now_ns();
    ev::set_upcall_mask(0);
    loop {
        ev::poke();
        let now = ev::now_ns();
        let done = UPCALLS.load(Ordering::SeqCst) > 0;
        if (done && now > start + 10 * MS) || now > start + budget_ns {
            break;
        }
        core::hint::spin_loop();
    }
    ev::set_upcall_mask(1);
}

// ---------------------------------------------------------------------------------------------
// Reporting.

/// The suite's ports, by label.
struct Ports([(char, u32); 6]);

impl Ports {
    fn label(&self, port: u32) -> char {
        self.0
            .iter()
            .find(|(_, p)| *p == port)
            .map_or('?', |(l, _)| *l)
    }

    fn port(&self, label: char) -> u32 {
        self.0
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(0, |(_, p)| *p)
    }
}

/// A short string buffer for details.
struct Buf {
    b: [u8; 96],
    n: usize,
}

impl Buf {
    fn new() -> Self {
        Buf { b: [0; 96], n: 0 }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.b[..self.n]).unwrap_or("?")
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = (self.n + s.len()).min(self.b.len());
        let take = end - self.n;
        self.b[self.n..end].copy_from_slice(&s.as_bytes()[..take]);
        self.n = end;
        Ok(())
    }
}

/// The consumed ports, as labels (`-` for none).
fn order(p: &Ports) -> Buf {
    let mut b = Buf::new();
    let n = (ORDER_LEN.load(Ordering::SeqCst) as usize).min(ORDER.len());
    for (i, o) in ORDER[..n].iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(b, "{sep}{}", p.label(o.load(Ordering::SeqCst)));
    }
    if n == 0 {
        let _ = b.write_str("-");
    }
    b
}

/// The queues as the control block and the event array show them, without consuming:
/// `q:HEAD>LINK>...` for each READY priority.
fn queues(p: &Ports) -> Buf {
    let mut b = Buf::new();
    let ready = cb_ready().load(Ordering::SeqCst);
    let mut first = true;
    for q in 0..EVTCHN_FIFO_MAX_QUEUES {
        if ready & (1 << q) == 0 {
            continue;
        }
        let _ = write!(b, "{}{q}:", if first { "" } else { "," });
        first = false;
        let mut port = cb_head(q);
        for i in 0..8 {
            let _ = write!(b, "{}{}", if i == 0 { "" } else { ">" }, p.label(port));
            if port == 0 || port >= WORDS {
                break;
            }
            let w = word(port).load(Ordering::SeqCst);
            port = w & EVTCHN_FIFO_LINK_MASK;
            if w & LINKED == 0 || port == 0 {
                break;
            }
        }
    }
    if first {
        let _ = b.write_str("-");
    }
    b
}

/// Whether every port's event word equals `want`.
fn words_are(p: &Ports, want: u32) -> bool {
    p.0.iter()
        .all(|(_, port)| word(*port).load(Ordering::SeqCst) == want)
}

// ---------------------------------------------------------------------------------------------
// The suite.

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let rc = ev::map_shared_info(si);
    s.expect_rc("shared_info.map_writable", rc, 0);
    if rc != 0 {
        s.skip("rest", format_args!("shared_info not mapped"));
        return;
    }
    ev::set_upcall_mask(1);

    // Ports, bound under 2-level: four IPIs and a loopback interdomain pair.
    let mut rcs = [0i64; 6];
    let mut ports = Ports([('A', 0), ('B', 0), ('C', 0), ('D', 0), ('R', 0), ('L', 0)]);
    for (i, rc) in rcs.iter_mut().take(4).enumerate() {
        (*rc, ports.0[i].1) = ev::bind_ipi(0);
    }
    (rcs[4], ports.0[4].1) = ev::alloc_unbound_self();
    (rcs[5], ports.0[5].1) = ev::bind_interdomain_self(ports.0[4].1);
    let bound = rcs.iter().all(|rc| *rc == 0);
    let in_page = ports.0.iter().all(|(_, p)| *p != 0 && *p < WORDS);
    s.check(
        "bind_ports",
        bound && in_page,
        format_args!("rc_all_0={bound} in_first_page={in_page}"),
    );
    if !(bound && in_page) {
        s.skip("rest", format_args!("ports not bound"));
        return;
    }
    let a = ports.port('A');

    // 2-level: no priorities, no event array.
    s.expect_rc("set_priority.two_level", set_priority(a, 3), ENOSYS);
    s.expect_rc(
        "set_priority.two_level_bad_port",
        set_priority(BAD_PORT, 3),
        EINVAL,
    );
    let array_mfn = mfn_of(si, (&raw const ARRAY_PAGE) as u64);
    let cb_mfn = mfn_of(si, (&raw const CB_PAGE) as u64);
    s.expect_rc(
        "expand_array.two_level",
        expand_array(array_mfn),
        EOPNOTSUPP,
    );

    // init_control argument checks (each leaves the domain 2-level).
    let l4_mfn = mfn_of(si, si.pt_base);
    for (check, gfn, offset, vcpu, want) in [
        ("init_control.bad_vcpu", cb_mfn, CB_OFFSET, 0xffff, ENOENT),
        ("init_control.offset_unaligned", cb_mfn, 4, 0, EINVAL),
        (
            "init_control.offset_beyond_page",
            cb_mfn,
            CB_OFFSET + 8,
            0,
            EINVAL,
        ),
        ("init_control.not_own_frame", BAD_MFN, CB_OFFSET, 0, EINVAL),
        (
            "init_control.page_table_frame",
            l4_mfn,
            CB_OFFSET,
            0,
            EINVAL,
        ),
    ] {
        let (rc, bits) = init_control(gfn, offset, vcpu);
        s.check(
            check,
            rc == want && bits == 0xaa,
            format_args!("rc={} link_bits_written={}", Rc(rc), bits != 0xaa),
        );
    }
    s.expect_rc(
        "init_control.failed_stays_two_level",
        set_priority(a, 3),
        ENOSYS,
    );

    // The switch. Like Linux, every event word starts MASKED before the page is handed over.
    for port in 0..WORDS {
        word(port).store(MASKED, Ordering::SeqCst);
    }
    let (rc, bits) = init_control(cb_mfn, CB_OFFSET, 0);
    s.check(
        "init_control.switch",
        rc == 0 && u32::from(bits) == EVTCHN_FIFO_LINK_BITS,
        format_args!("rc={} link_bits={bits}", Rc(rc)),
    );
    if rc != 0 {
        s.skip("rest", format_args!("still 2-level"));
        return;
    }
    let (rc, _) = init_control(cb_mfn, CB_OFFSET, 0);
    s.expect_rc("init_control.again_same_vcpu", rc, EINVAL);
    s.expect_rc("expand_array.not_own_frame", expand_array(BAD_MFN), EINVAL);
    let rc = expand_array(array_mfn);
    // Xen's bind_interdomain marks L pending (it may have missed a notification); the switch
    // carries 2-level pending bits over and the new page re-raises them (MASKED: not linked).
    let l = ports.port('L');
    let others_masked = ports
        .0
        .iter()
        .all(|(lb, p)| *lb == 'L' || word(*p).load(Ordering::SeqCst) == MASKED);
    let l_word = word(l).load(Ordering::SeqCst);
    s.check(
        "expand_array.first_page",
        rc == 0 && others_masked && l_word == PENDING | MASKED,
        format_args!(
            "rc={} others_masked_only={others_masked} l_pending={} l_masked={} l_linked={}",
            Rc(rc),
            l_word & PENDING != 0,
            l_word & MASKED != 0,
            l_word & LINKED != 0
        ),
    );
    if rc != 0 {
        s.skip("rest", format_args!("no event array"));
        fifo_cleanup(s, &ports);
        return;
    }

    // Priorities.
    let prios = [('A', 5), ('B', 2), ('C', 5), ('L', 2)];
    let rcs = prios.map(|(l, q)| set_priority(ports.port(l), q));
    s.check(
        "set_priority.valid",
        rcs.iter().all(|rc| *rc == 0),
        format_args!(
            "rc={},{},{},{}",
            Rc(rcs[0]),
            Rc(rcs[1]),
            Rc(rcs[2]),
            Rc(rcs[3])
        ),
    );
    s.expect_rc("set_priority.priority_16", set_priority(a, 16), EINVAL);
    s.expect_rc("set_priority.bad_port", set_priority(BAD_PORT, 3), EINVAL);
    s.expect_rc("set_priority.reserved_port_0", set_priority(0, 3), EACCES);

    // Acknowledge L's stale event, then unmask the suite's ports the way Linux does (clear
    // MASKED in the word; none is pending, so no EVTCHNOP_unmask).
    word(l).fetch_and(!PENDING, Ordering::SeqCst);
    for (_, port) in &ports.0 {
        word(*port).fetch_and(!MASKED, Ordering::SeqCst);
    }
    let rc = register_callback((&raw const pvtest_fifo_entry) as u64);
    s.expect_rc("callback_op.register_fifo_handler", rc, 0);
    // Let a leftover upcall (evtchn_upcall_pending from earlier suites) run.
    reset();
    take_upcalls(10 * MS);

    // Send with events masked: D (7), A (5), R->L (2), C (5), B (2), B again.
    reset();
    let sends = ['D', 'A', 'R', 'C', 'B', 'B'].map(|l| ev::send(ports.port(l)));
    let pending = ev::upcall_pending();
    let ready = cb_ready().load(Ordering::SeqCst);
    // The FIFO ABI leaves shared_info's 2-level bits alone (L's is still set from the bind).
    let shinfo_others = ports
        .0
        .iter()
        .any(|(lb, p)| *lb != 'L' && ev::port_pending(*p));
    let shinfo_l = ev::port_pending(ports.port('L'));
    s.check(
        "send.queued_while_masked",
        sends.iter().all(|rc| *rc == 0) && pending == 1 && UPCALLS.load(Ordering::SeqCst) == 0,
        format_args!(
            "rc_all_0={} upcall_pending={pending} upcalls={} shinfo_l={shinfo_l} \
             shinfo_others={shinfo_others}",
            sends.iter().all(|rc| *rc == 0),
            UPCALLS.load(Ordering::SeqCst)
        ),
    );
    let q = queues(&ports);
    s.check(
        "control_block.queues",
        ready == 0xa4 && q.as_str() == "2:L>B,5:A>C,7:D",
        format_args!("ready={} queues={}", Hex(ready.into()), q.as_str()),
    );
    let l_word = word(ports.port('L')).load(Ordering::SeqCst);
    let d_word = word(ports.port('D')).load(Ordering::SeqCst);
    s.check(
        "event_word.bits",
        l_word == PENDING | LINKED | ports.port('B') && d_word == PENDING | LINKED,
        format_args!(
            "l_pending={} l_linked={} l_masked={} l_link_b={} d_link={}",
            l_word & PENDING != 0,
            l_word & LINKED != 0,
            l_word & MASKED != 0,
            l_word & EVTCHN_FIFO_LINK_MASK == ports.port('B'),
            d_word & EVTCHN_FIFO_LINK_MASK
        ),
    );

    // The upcall: the consumer sees priority order, then send order within a priority.
    take_upcalls(WAIT);
    let o = order(&ports);
    let ready = cb_ready().load(Ordering::SeqCst);
    let clean = words_are(&ports, 0);
    let ups = UPCALLS.load(Ordering::SeqCst);
    let odd = ODD.load(Ordering::SeqCst);
    s.check(
        "upcall.consume_order",
        ups == 1 && o.as_str() == "L,B,A,C,D" && ready == 0 && clean && odd == 0,
        format_args!(
            "upcalls={ups} order={} ready={} words_clear={clean} odd={odd}",
            o.as_str(),
            Hex(ready.into())
        ),
    );

    // A new priority applies to the next event.
    let rc = set_priority(ports.port('D'), 0);
    reset();
    let sends = ['A', 'D'].map(|l| ev::send(ports.port(l)));
    let q = queues(&ports);
    take_upcalls(WAIT);
    let o = order(&ports);
    s.check(
        "set_priority.takes_effect",
        rc == 0 && sends == [0, 0] && q.as_str() == "0:D,5:A" && o.as_str() == "D,A",
        format_args!("rc={} queues={} order={}", Rc(rc), q.as_str(), o.as_str()),
    );

    // A masked port: sending marks it PENDING but does not link it.
    word(a).fetch_or(MASKED, Ordering::SeqCst);
    reset();
    let rc = ev::send(a);
    let w = word(a).load(Ordering::SeqCst);
    let ready = cb_ready().load(Ordering::SeqCst);
    let pending = ev::upcall_pending();
    s.check(
        "masked_port.send",
        rc == 0 && w == PENDING | MASKED && ready == 0 && pending == 0,
        format_args!(
            "rc={} pending={} masked={} linked={} ready={} upcall_pending={pending}",
            Rc(rc),
            w & PENDING != 0,
            w & MASKED != 0,
            w & LINKED != 0,
            Hex(ready.into())
        ),
    );
    // EVTCHNOP_unmask clears MASKED itself and links the pending port.
    let rc = ev::unmask(a);
    let w = word(a).load(Ordering::SeqCst);
    let q = queues(&ports);
    let pending = ev::upcall_pending();
    s.check(
        "masked_port.unmask_requeues",
        rc == 0 && w == PENDING | LINKED && q.as_str() == "5:A" && pending == 1,
        format_args!(
            "rc={} pending={} masked={} linked={} queues={} upcall_pending={pending}",
            Rc(rc),
            w & PENDING != 0,
            w & MASKED != 0,
            w & LINKED != 0,
            q.as_str()
        ),
    );
    take_upcalls(WAIT);
    let o = order(&ports);
    s.check(
        "masked_port.delivered",
        o.as_str() == "A" && words_are(&ports, 0),
        format_args!("order={} words_clear={}", o.as_str(), words_are(&ports, 0)),
    );

    // EVTCHNOP_status under FIFO.
    let (rc1, st1) = ev::status(a);
    let (rc2, st2) = ev::status(ports.port('L'));
    s.check(
        "status.after_switch",
        rc1 == 0
            && st1.status == EVTCHNSTAT_ipi
            && st1.vcpu == 0
            && rc2 == 0
            && st2.status == EVTCHNSTAT_interdomain
            && st2.u[1] == ports.port('R'),
        format_args!(
            "ipi_rc={} ipi_status={} ipi_vcpu={} loop_rc={} loop_status={} remote_is_r={}",
            Rc(rc1),
            st1.status,
            st1.vcpu,
            Rc(rc2),
            st2.status,
            st2.u[1] == ports.port('R')
        ),
    );

    fifo_cleanup(s, &ports);
}

/// Closes the suite's ports, lets nothing further arrive and hands event delivery back to
/// `events.rs`'s handler (events stay masked).
fn fifo_cleanup(s: &mut Suite, ports: &Ports) {
    let rcs = ports.0.map(|(_, p)| ev::close(p));
    let rc = ev::register_callback();
    ev::set_upcall_mask(1);
    s.check(
        "cleanup",
        rcs.iter().all(|rc| *rc == 0) && rc == 0,
        format_args!(
            "close_rc_all_0={} register_callback={}",
            rcs.iter().all(|rc| *rc == 0),
            Rc(rc)
        ),
    );
}
