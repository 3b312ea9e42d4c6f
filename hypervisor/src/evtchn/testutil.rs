//! Host-test doubles: guest pages in leaked heap memory, a fake domain, and a model of a FIFO
//! guest that consumes its queues the way Linux's `events_fifo.c` does, one step at a time so
//! tests can interleave it with the hypervisor.

use super::abi::Notify;
use super::guest::{EventMemory, GuestMem};
use super::ops::EvtchnDomain;
use super::table::PortTable;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;
use xen_abi::DomId;
use xen_abi::errno::Errno;
use xen_abi::event_channel::{
    EVTCHN_FIFO_BUSY, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_LINKED, EVTCHN_FIFO_MASKED,
    EVTCHN_FIFO_MAX_QUEUES, EVTCHN_FIFO_PENDING,
};

pub(crate) const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
pub(crate) const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
pub(crate) const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
pub(crate) const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;

const GUARD_WORDS: usize = 512;
const CANARY: u64 = 0x5a5a_c3c3_a5a5_3c3c;

/// A 4 KiB guest page that lives for the rest of the test run (so the `GuestMem`s handed to
/// the code under test never dangle), with a canary-filled guard page on each side.
pub(crate) struct TestPage {
    words: &'static [AtomicU64],
}

impl TestPage {
    pub(crate) fn new() -> Self {
        let all: Vec<AtomicU64> = (0..GUARD_WORDS * 3)
            .map(|i| {
                let guard = !(GUARD_WORDS..2 * GUARD_WORDS).contains(&i);
                AtomicU64::new(if guard { CANARY } else { 0 })
            })
            .collect();
        Self {
            words: Box::leak(all.into_boxed_slice()),
        }
    }

    fn page(&self) -> &'static [AtomicU64] {
        &self.words[GUARD_WORDS..2 * GUARD_WORDS]
    }

    /// The page as guest memory, with `frame` as its token.
    pub(crate) fn mem(&self, frame: u64) -> GuestMem {
        let base = self.page().as_ptr().cast::<u8>().cast_mut();
        // SAFETY: the page is leaked, so it outlives every GuestMem; the code under test and
        // the guest model touch it only atomically.
        unsafe { GuestMem::from_raw(base, 4096, frame) }.unwrap()
    }

    /// 32-bit word `i` of the page, as the guest sees it.
    pub(crate) fn word32(&self, i: usize) -> &'static AtomicU32 {
        assert!(i < 1024);
        let p = self
            .page()
            .as_ptr()
            .cast::<u32>()
            .cast_mut()
            .wrapping_add(i);
        // SAFETY: inside the leaked page, 4-aligned.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// Byte `i` of the page.
    pub(crate) fn byte(&self, i: usize) -> &'static AtomicU8 {
        assert!(i < 4096);
        let p = self.page().as_ptr().cast::<u8>().cast_mut().wrapping_add(i);
        // SAFETY: inside the leaked page.
        unsafe { AtomicU8::from_ptr(p) }
    }

    pub(crate) fn u32(&self, i: usize) -> u32 {
        self.word32(i).load(Ordering::SeqCst)
    }

    pub(crate) fn u64(&self, i: usize) -> u64 {
        self.page()[i].load(Ordering::SeqCst)
    }

    pub(crate) fn set_u64(&self, i: usize, v: u64) {
        self.page()[i].store(v, Ordering::SeqCst);
    }

    /// Whether both guard pages are untouched.
    pub(crate) fn guards_intact(&self) -> bool {
        let guards = self.words[..GUARD_WORDS]
            .iter()
            .chain(&self.words[2 * GUARD_WORDS..]);
        guards
            .into_iter()
            .all(|w| w.load(Ordering::SeqCst) == CANARY)
    }
}

/// A fake domain: `shared_info`, one `vcpu_info` page per vCPU, a port table.
pub(crate) struct TestDomain {
    pub(crate) id: DomId,
    pub(crate) shared: TestPage,
    pub(crate) vcpu_pages: Vec<TestPage>,
    pub(crate) table: Mutex<PortTable>,
}

impl TestDomain {
    pub(crate) fn new(nr_vcpus: u32) -> Self {
        Self::with_id(0, nr_vcpus)
    }

    pub(crate) fn with_id(id: DomId, nr_vcpus: u32) -> Self {
        Self {
            id,
            shared: TestPage::new(),
            vcpu_pages: (0..nr_vcpus).map(|_| TestPage::new()).collect(),
            table: Mutex::new(PortTable::new(nr_vcpus)),
        }
    }

    /// `vcpu_info.evtchn_upcall_pending` of `vcpu`.
    pub(crate) fn upcall(&self, vcpu: u32) -> u8 {
        self.vcpu_pages[vcpu as usize]
            .byte(0)
            .load(Ordering::SeqCst)
    }

    /// The guest acknowledges the upcall (clears `evtchn_upcall_pending`).
    pub(crate) fn clear_upcall(&self, vcpu: u32) {
        self.vcpu_pages[vcpu as usize]
            .byte(0)
            .store(0, Ordering::SeqCst);
    }

    /// `vcpu_info.evtchn_pending_sel` of `vcpu`.
    pub(crate) fn selector(&self, vcpu: u32) -> u64 {
        self.vcpu_pages[vcpu as usize].u64(1)
    }

    /// The guest sets `port`'s 2-level mask bit.
    pub(crate) fn mask_2l(&self, port: u32) {
        let w = 2560 / 8 + port as usize / 64;
        self.shared
            .set_u64(w, self.shared.u64(w) | 1 << (port % 64));
    }

    /// Whether `port`'s 2-level pending bit is set.
    pub(crate) fn pending_2l(&self, port: u32) -> bool {
        self.shared.u64(2048 / 8 + port as usize / 64) & 1 << (port % 64) != 0
    }
}

impl EventMemory for TestDomain {
    fn shared_info(&self) -> Option<GuestMem> {
        Some(self.shared.mem(0))
    }

    fn vcpu_info(&self, vcpu: u32) -> Option<GuestMem> {
        self.vcpu_pages.get(vcpu as usize)?.mem(0).sub(0, 64)
    }
}

impl EvtchnDomain for TestDomain {
    fn domid(&self) -> DomId {
        self.id
    }

    fn ports(&self) -> &Mutex<PortTable> {
        &self.table
    }
}

/// A FIFO guest: its control-block pages (at `CB_OFFSET`), its event-array pages, and
/// Linux's per-vCPU copy of each queue's head.
pub(crate) struct FifoGuest {
    pub(crate) controls: Vec<TestPage>,
    pub(crate) array: Vec<TestPage>,
    local_head: Vec<[u32; EVTCHN_FIFO_MAX_QUEUES]>,
    /// Events handled, in order, per vCPU.
    pub(crate) delivered: Vec<Vec<u32>>,
}

/// Where the guest puts its control blocks in their pages.
pub(crate) const CB_OFFSET: u32 = 64;

impl FifoGuest {
    pub(crate) fn new(nr_vcpus: u32) -> Self {
        let n = nr_vcpus as usize;
        Self {
            controls: (0..n).map(|_| TestPage::new()).collect(),
            array: Vec::new(),
            local_head: alloc::vec![[0; EVTCHN_FIFO_MAX_QUEUES]; n],
            delivered: alloc::vec![Vec::new(); n],
        }
    }

    /// `EVTCHNOP_init_control` for `vcpu`.
    pub(crate) fn init_control(
        &self,
        t: &mut PortTable,
        mem: &dyn EventMemory,
        vcpu: u32,
    ) -> Result<u8, Errno> {
        let page = self.controls[vcpu as usize].mem(100 + u64::from(vcpu));
        t.init_control(mem, vcpu, CB_OFFSET, || Ok(page))
    }

    /// `EVTCHNOP_expand_array` with a fresh page.
    pub(crate) fn expand(
        &mut self,
        t: &mut PortTable,
        mem: &dyn EventMemory,
    ) -> Result<Vec<Notify>, Errno> {
        let page = TestPage::new();
        let frame = 1000 + self.array.len() as u64;
        let r = t.expand_array(mem, || Ok(page.mem(frame)));
        if r.is_ok() {
            self.array.push(page);
        }
        r
    }

    /// Sets up FIFO on every vCPU with `pages` event-array pages.
    pub(crate) fn setup(t: &mut PortTable, mem: &dyn EventMemory, pages: usize) -> Self {
        let mut g = Self::new(t.nr_vcpus());
        for v in 0..t.nr_vcpus() {
            g.init_control(t, mem, v).unwrap();
        }
        for _ in 0..pages {
            let _ = g.expand(t, mem).unwrap();
        }
        g
    }

    pub(crate) fn word(&self, port: u32) -> &'static AtomicU32 {
        self.array[(port / 1024) as usize].word32((port % 1024) as usize)
    }

    pub(crate) fn ready(&self, vcpu: u32) -> &'static AtomicU32 {
        self.controls[vcpu as usize].word32(CB_OFFSET as usize / 4)
    }

    pub(crate) fn head(&self, vcpu: u32, priority: usize) -> &'static AtomicU32 {
        self.controls[vcpu as usize].word32(CB_OFFSET as usize / 4 + 2 + priority)
    }

    pub(crate) fn bits(&self, port: u32) -> u32 {
        self.word(port).load(Ordering::SeqCst)
    }

    /// The guest masks `port`.
    pub(crate) fn mask(&self, port: u32) {
        self.word(port).fetch_or(MASKED, Ordering::SeqCst);
    }

    /// Linux's `clear_masked_cond`: unmasks without a hypercall unless the port is pending
    /// (returns false: the guest must call `EVTCHNOP_unmask`). Waits while BUSY is set, which
    /// in these single-threaded tests means "would spin": that is reported as false too.
    pub(crate) fn try_unmask_locally(&self, port: u32) -> bool {
        let w = self.word(port);
        let mut seen = w.load(Ordering::SeqCst);
        loop {
            if seen & MASKED == 0 {
                return true;
            }
            if seen & PENDING != 0 || seen & BUSY != 0 {
                return false;
            }
            match w.compare_exchange(seen, seen & !MASKED, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(now) => seen = now,
            }
        }
    }

    /// Step: `ready = xchg(&control_block->ready, 0)`.
    pub(crate) fn take_ready(&self, vcpu: u32) -> u32 {
        self.ready(vcpu).swap(0, Ordering::SeqCst)
    }

    /// Step: the next port of queue `priority`: the guest's own copy of the head, or the
    /// control block's HEAD when it reached the end last time.
    pub(crate) fn load_head(&self, vcpu: u32, priority: usize) -> u32 {
        match self.local_head[vcpu as usize][priority] {
            0 => self.head(vcpu, priority).load(Ordering::SeqCst),
            h => h,
        }
    }

    /// Step: Linux's `clear_linked`: unlinks `port` and returns its LINK.
    pub(crate) fn clear_linked(&self, port: u32) -> u32 {
        let w = self.word(port);
        let mut seen = w.load(Ordering::SeqCst);
        loop {
            let new = seen & !(LINKED | EVTCHN_FIFO_LINK_MASK);
            match w.compare_exchange(seen, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return seen & EVTCHN_FIFO_LINK_MASK,
                Err(now) => seen = now,
            }
        }
    }

    /// Step: handle `port` if pending and unmasked (clear PENDING, then record it).
    pub(crate) fn handle(&mut self, vcpu: u32, port: u32) {
        let w = self.word(port);
        if w.load(Ordering::SeqCst) & (PENDING | MASKED) == PENDING {
            w.fetch_and(!PENDING, Ordering::SeqCst);
            self.delivered[vcpu as usize].push(port);
        }
    }

    /// Step: remember where queue `priority` continues.
    pub(crate) fn set_local_head(&mut self, vcpu: u32, priority: usize, next: u32) {
        self.local_head[vcpu as usize][priority] = next;
    }

    /// Linux's `consume_one_event`.
    pub(crate) fn consume_one(&mut self, vcpu: u32, priority: usize, ready: &mut u32) {
        let port = self.load_head(vcpu, priority);
        let next = self.clear_linked(port);
        if next == 0 {
            *ready &= !(1 << priority);
        }
        self.handle(vcpu, port);
        self.set_local_head(vcpu, priority, next);
    }

    /// Linux's `__evtchn_fifo_handle_events`: consumes until READY stays clear, highest
    /// priority (lowest number) first. Returns the ports handled by this call.
    pub(crate) fn drain(&mut self, vcpu: u32) -> Vec<u32> {
        let before = self.delivered[vcpu as usize].len();
        let mut ready = self.take_ready(vcpu);
        let mut steps = 0;
        while ready != 0 {
            steps += 1;
            assert!(steps < 1_000_000, "guest model does not terminate");
            let q = ready.trailing_zeros() as usize;
            self.consume_one(vcpu, q, &mut ready);
            ready |= self.take_ready(vcpu);
        }
        self.delivered[vcpu as usize][before..].to_vec()
    }
}
