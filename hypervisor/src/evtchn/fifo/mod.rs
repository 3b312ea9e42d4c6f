//! The FIFO event-channel ABI (Xen's `xen/common/event_fifo.c`).
//!
//! Each port has a 32-bit event word in guest-provided *event-array* pages (PENDING, MASKED,
//! LINKED and BUSY bits and a 17-bit LINK to the next port in its queue). Each vCPU has a
//! guest-provided *control block*: a READY bitmap and the HEAD port of each of its 16 priority
//! queues. The hypervisor appends to a queue by linking the new event behind the queue's tail,
//! which only it knows (`link.rs`); the guest consumes from the head, clearing LINKED as it goes.
//!
//! The hypervisor never follows a LINK or reads a HEAD: it writes them. All it reads from guest
//! memory are bits of event words at offsets it computes from port numbers it validated, so a
//! guest that scribbles over its pages can only lose its own events.
//!
//! Xen protects the queues with per-queue spinlocks and moves between queue locks with a
//! bounded retry loop; here every operation runs under the domain's port-table lock, which
//! serialises all producers, so that loop is not needed.

pub(crate) mod link;
#[cfg(test)]
mod tests;

use super::abi::{EventAbi, FifoPortState, Notify, mark_events_pending};
use super::guest::{EventMemory, GuestMem, test_and_set_u32, test_u32};
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, Ordering};
use xen_abi::errno::Errno;
use xen_abi::event_channel::{
    EVTCHN_FIFO_LINKED, EVTCHN_FIFO_MASKED, EVTCHN_FIFO_MAX_QUEUES, EVTCHN_FIFO_NR_CHANNELS,
    EVTCHN_FIFO_PENDING, EVTCHN_FIFO_PRIORITY_DEFAULT, EVTCHN_FIFO_PRIORITY_MIN,
    EvtchnFifoControlBlock,
};

const PAGE_SIZE: usize = 4096;
/// Event words per event-array page (`EVTCHN_FIFO_EVENT_WORDS_PER_PAGE`).
pub const WORDS_PER_PAGE: u32 = (PAGE_SIZE / 4) as u32;
/// Event-array pages needed for every FIFO port (`EVTCHN_FIFO_MAX_EVENT_ARRAY_PAGES`).
pub const MAX_EVENT_ARRAY_PAGES: usize = (EVTCHN_FIFO_NR_CHANNELS / WORDS_PER_PAGE) as usize;
/// Size of `struct evtchn_fifo_control_block`.
pub const CONTROL_BLOCK_SIZE: usize = core::mem::size_of::<EvtchnFifoControlBlock>();

/// A vCPU's control block: READY and the queue heads.
struct ControlBlock(GuestMem);

impl ControlBlock {
    const READY: usize = core::mem::offset_of!(EvtchnFifoControlBlock, ready);
    const HEAD: usize = core::mem::offset_of!(EvtchnFifoControlBlock, head);

    fn ready(&self) -> &AtomicU32 {
        self.0.u32_at(Self::READY)
    }

    /// HEAD of queue `priority` (< 16: priorities are validated by `set_priority`).
    fn head(&self, priority: u8) -> &AtomicU32 {
        self.0.u32_at(Self::HEAD + 4 * usize::from(priority))
    }
}

/// The event word of `port`, if its event-array page was added (`evtchn_fifo_word_from_port`).
fn word_of(array: &[GuestMem], port: u32) -> Option<&AtomicU32> {
    let page = array.get((port / WORDS_PER_PAGE) as usize)?;
    Some(page.u32_at((port % WORDS_PER_PAGE) as usize * 4))
}

/// A domain's FIFO state: its event array and, per vCPU, its control block and queue tails.
pub struct Fifo {
    /// Event-array pages in port order; `array.len() * WORDS_PER_PAGE` ports have a word.
    array: Vec<GuestMem>,
    /// Per vCPU: the control block, once `EVTCHNOP_init_control` mapped it.
    controls: Vec<Option<ControlBlock>>,
    /// Per vCPU and priority: the last port linked on that queue, 0 for none. Hypervisor-only
    /// state (the guest cannot see or change it), so it is trusted.
    tails: Vec<[u32; EVTCHN_FIFO_MAX_QUEUES]>,
}

impl Fifo {
    /// Empty FIFO state for `nr_vcpus` vCPUs: no control block, no event-array page
    /// (`setup_control_block` and `setup_event_array`).
    pub fn new(nr_vcpus: u32) -> Self {
        let n = nr_vcpus as usize;
        Self {
            array: Vec::new(),
            controls: (0..n).map(|_| None).collect(),
            tails: alloc::vec![[0; EVTCHN_FIFO_MAX_QUEUES]; n],
        }
    }

    /// Ports that have an event word (`num_evtchns`).
    pub fn ports_with_words(&self) -> u32 {
        self.array.len() as u32 * WORDS_PER_PAGE
    }

    /// Whether `vcpu` has a control block.
    pub fn has_control_block(&self, vcpu: u32) -> bool {
        matches!(self.controls.get(vcpu as usize), Some(Some(_)))
    }

    /// The tail of `vcpu`'s queue `priority` (0: empty as far as the hypervisor knows).
    pub fn tail(&self, vcpu: u32, priority: u8) -> Option<u32> {
        self.tails
            .get(vcpu as usize)?
            .get(usize::from(priority))
            .copied()
    }

    /// Installs `vcpu`'s control block at `offset` in `page` (`map_control_block`). The caller
    /// checked the offset (`init_control`) and that the vCPU has none yet.
    pub(crate) fn install_control_block(
        &mut self,
        vcpu: u32,
        page: GuestMem,
        offset: u32,
    ) -> Result<(), Errno> {
        let cb = page
            .sub(offset as usize, CONTROL_BLOCK_SIZE)
            .ok_or(Errno::EINVAL)?;
        self.controls[vcpu as usize] = Some(ControlBlock(cb));
        Ok(())
    }

    /// Whether the event array already covers every FIFO port.
    pub fn array_full(&self) -> bool {
        self.array.len() >= MAX_EVENT_ARRAY_PAGES
    }

    /// Appends an event-array page (`add_page_to_event_array`); returns the ports it gives
    /// words to. The caller checked [`Fifo::array_full`].
    pub(crate) fn add_array_page(&mut self, page: GuestMem) -> Result<Range<u32>, Errno> {
        if page.len() < PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        let first = self.ports_with_words();
        self.array.push(page);
        Ok(first..self.ports_with_words())
    }

    /// Gives back every page (control blocks and event array), for the owner to release
    /// (`evtchn_fifo_destroy`).
    pub fn into_pages(self) -> Vec<GuestMem> {
        let controls = self.controls.into_iter().flatten().map(|cb| cb.0);
        controls.chain(self.array).collect()
    }

    fn word(&self, port: u32) -> Option<&AtomicU32> {
        word_of(&self.array, port)
    }

    /// `set_pending` with a hook run before each compare-exchange on a tail word, so tests can
    /// interleave guest steps with the link protocol.
    pub(crate) fn set_pending_observed(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        st: &mut FifoPortState,
        vcpu: u32,
        before_exchange: &mut dyn FnMut(&AtomicU32),
    ) -> Notify {
        let Fifo {
            array,
            controls,
            tails,
        } = self;
        let Some(word) = word_of(array, port) else {
            // No event-array page yet: remember it for when the page is added.
            st.deferred = true;
            return Notify::NONE;
        };
        // A vCPU without a control block cannot be queued to; the guest must not unmask a port
        // before setting it up, so the event is dropped without becoming PENDING (Xen 4.17).
        let Some(Some(cb)) = controls.get(vcpu as usize) else {
            return Notify::NONE;
        };
        let newly_pending = !test_and_set_u32(word, EVTCHN_FIFO_PENDING);
        let priority = st.priority;
        let mut linked = true;
        if !test_u32(word, EVTCHN_FIFO_MASKED) && !test_and_set_u32(word, EVTCHN_FIFO_LINKED) {
            // If the port is still the tail of the queue it was last on, that queue is empty
            // now (the guest unlinked it); forget the tail so a later event there does not
            // link behind a word that now sits on another queue.
            let (last_vcpu, last_priority) = st.last_queue;
            if let Some(t) = tails
                .get_mut(last_vcpu as usize)
                .map(|t| &mut t[usize::from(last_priority)])
                && *t == port
            {
                *t = 0;
            }
            st.last_queue = (vcpu, priority);

            let tail = &mut tails[vcpu as usize][usize::from(priority)];
            linked = *tail != 0
                && word_of(array, *tail)
                    .is_some_and(|tw| link::set_link(tw, port, before_exchange));
            if !linked {
                cb.head(priority).store(port, Ordering::SeqCst);
            }
            *tail = port;
        }
        let kick = !linked
            && !test_and_set_u32(cb.ready(), u32::from(priority))
            && mark_events_pending(mem, vcpu);
        Notify {
            kick: kick.then_some(vcpu),
            poll: newly_pending.then_some(port),
        }
    }
}

impl EventAbi for Fifo {
    fn max_ports(&self) -> u32 {
        EVTCHN_FIFO_NR_CHANNELS
    }

    fn init_port(&mut self, _port: u32, st: &mut FifoPortState) {
        // Xen also warns here if the word is still LINKED; the port allocator already skips
        // such ports (`is_busy`), so only a guest setting LINKED itself gets here.
        st.priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
    }

    fn set_pending(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify {
        self.set_pending_observed(mem, port, st, vcpu, &mut |_| {})
    }

    fn clear_pending(&mut self, _mem: &dyn EventMemory, port: u32) {
        // Only PENDING: the guest unlinks a non-pending event itself and skips it.
        if let Some(w) = self.word(port) {
            w.fetch_and(!(1 << EVTCHN_FIFO_PENDING), Ordering::SeqCst);
        }
    }

    fn unmask(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify {
        let Some(w) = self.word(port) else {
            return Notify::NONE;
        };
        w.fetch_and(!(1 << EVTCHN_FIFO_MASKED), Ordering::SeqCst);
        if test_u32(w, EVTCHN_FIFO_PENDING) {
            // Relink: it was not queued while masked.
            self.set_pending(mem, port, st, vcpu)
        } else {
            Notify::NONE
        }
    }

    fn is_pending(&self, _mem: &dyn EventMemory, port: u32) -> bool {
        self.word(port)
            .is_some_and(|w| test_u32(w, EVTCHN_FIFO_PENDING))
    }

    fn is_masked(&self, _mem: &dyn EventMemory, port: u32) -> bool {
        self.word(port)
            .is_none_or(|w| test_u32(w, EVTCHN_FIFO_MASKED))
    }

    fn is_busy(&self, port: u32) -> bool {
        self.word(port)
            .is_some_and(|w| test_u32(w, EVTCHN_FIFO_LINKED))
    }

    fn set_priority(&mut self, st: &mut FifoPortState, priority: u32) -> Result<(), Errno> {
        if priority > EVTCHN_FIFO_PRIORITY_MIN {
            return Err(Errno::EINVAL);
        }
        // Only future links use it: an event already queued stays on its old queue.
        st.priority = priority as u8;
        Ok(())
    }
}
