//! Linking a new event behind a queue's tail word (Xen's `evtchn_fifo_set_link`).
//!
//! The tail word belongs to the guest as much as to the hypervisor: while it is LINKED the guest
//! may set or clear MASKED, clear PENDING, or clear LINKED (and LINK) because it consumed the
//! event. So the LINK field is written with a compare-exchange that succeeds only on a word that
//! is still LINKED. If the guest changed the word in between, BUSY is set to stop it from
//! unmasking (Linux's `clear_masked_cond` waits for BUSY to clear), leaving it only a few
//! possible changes; after four more failed attempts the hypervisor gives up, so a guest that
//! keeps rewriting the word cannot hold it in this loop. Giving up reports the link as made: the
//! new event is then lost to the guest that misbehaved, never to anyone else.

use core::sync::atomic::{AtomicU32, Ordering};
use xen_abi::event_channel::{EVTCHN_FIFO_BUSY, EVTCHN_FIFO_LINK_MASK, EVTCHN_FIFO_LINKED};

/// Compare-exchange attempts after the first one fails (Xen's loop bound).
pub(crate) const RETRIES_WHILE_BUSY: usize = 4;

const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;

/// One attempt's outcome.
enum Attempt {
    /// The tail is no longer LINKED: the guest consumed it, the queue is empty.
    NotLinked,
    /// LINK now names the new event.
    Linked,
    /// The word changed under us; `seen` holds its new value.
    Changed,
}

/// Tries once to replace LINK (and clear BUSY) in a word last seen as `*seen`.
fn try_set_link(
    word: &AtomicU32,
    seen: &mut u32,
    link: u32,
    before_exchange: &mut dyn FnMut(&AtomicU32),
) -> Attempt {
    if *seen & LINKED == 0 {
        return Attempt::NotLinked;
    }
    let new = (*seen & !(BUSY | EVTCHN_FIFO_LINK_MASK)) | link;
    before_exchange(word);
    match word.compare_exchange(*seen, new, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => Attempt::Linked,
        Err(now) => {
            *seen = now;
            Attempt::Changed
        }
    }
}

/// Sets `word`'s LINK to `link` if the word is still LINKED. Returns false if it was not (the
/// caller then makes `link` the queue head). At most `1 + RETRIES_WHILE_BUSY` compare-exchanges.
///
/// `before_exchange` runs right before each compare-exchange: a no-op in the hypervisor, a
/// guest step in the tests that interleave the two sides.
pub(crate) fn set_link(
    word: &AtomicU32,
    link: u32,
    before_exchange: &mut dyn FnMut(&AtomicU32),
) -> bool {
    let mut seen = word.load(Ordering::SeqCst);
    match try_set_link(word, &mut seen, link, before_exchange) {
        Attempt::NotLinked => return false,
        Attempt::Linked => return true,
        Attempt::Changed => {}
    }
    // Hold off guest unmasking while we retry.
    word.fetch_or(BUSY, Ordering::SeqCst);
    seen = word.load(Ordering::SeqCst);
    for _ in 0..RETRIES_WHILE_BUSY {
        match try_set_link(word, &mut seen, link, before_exchange) {
            Attempt::NotLinked => {
                word.fetch_and(!BUSY, Ordering::SeqCst);
                return false;
            }
            // The exchanged value already has BUSY clear.
            Attempt::Linked => return true,
            Attempt::Changed => {}
        }
    }
    word.fetch_and(!BUSY, Ordering::SeqCst);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::event_channel::{EVTCHN_FIFO_MASKED, EVTCHN_FIFO_PENDING};

    const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
    const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;

    fn quiet() -> impl FnMut(&AtomicU32) {
        |_| {}
    }

    #[test]
    fn links_a_linked_tail_and_keeps_its_other_bits() {
        let w = AtomicU32::new(PENDING | LINKED | 0x1234);
        assert!(set_link(&w, 77, &mut quiet()));
        assert_eq!(w.load(Ordering::SeqCst), PENDING | LINKED | 77);
    }

    #[test]
    fn an_unlinked_tail_is_left_alone() {
        let w = AtomicU32::new(PENDING);
        assert!(!set_link(&w, 5, &mut quiet()));
        assert_eq!(
            w.load(Ordering::SeqCst),
            PENDING,
            "no LINK, no BUSY left behind"
        );
    }

    #[test]
    fn guest_unlinking_between_read_and_exchange_makes_it_not_linked() {
        // The guest consumes the tail (clears LINKED and LINK) right after our read.
        let w = AtomicU32::new(PENDING | LINKED);
        let mut calls = 0;
        let mut guest = |w: &AtomicU32| {
            calls += 1;
            if calls == 1 {
                w.fetch_and(!(LINKED | EVTCHN_FIFO_LINK_MASK), Ordering::SeqCst);
            }
        };
        assert!(!set_link(&w, 9, &mut guest));
        assert_eq!(
            calls, 1,
            "the retry sees the word unlinked without exchanging"
        );
        assert_eq!(w.load(Ordering::SeqCst), PENDING, "BUSY cleared again");
    }

    #[test]
    fn guest_masking_once_costs_one_retry_under_busy() {
        let w = AtomicU32::new(PENDING | LINKED);
        let mut calls = 0;
        let mut guest = |w: &AtomicU32| {
            calls += 1;
            if calls == 1 {
                w.fetch_or(MASKED, Ordering::SeqCst);
            } else {
                assert_ne!(w.load(Ordering::SeqCst) & BUSY, 0, "retries run under BUSY");
            }
        };
        assert!(set_link(&w, 3, &mut guest));
        assert_eq!(calls, 2);
        assert_eq!(w.load(Ordering::SeqCst), PENDING | MASKED | LINKED | 3);
    }

    #[test]
    fn a_guest_rewriting_the_word_forever_cannot_keep_us_looping() {
        let w = AtomicU32::new(PENDING | LINKED);
        let mut calls = 0;
        let mut hostile = |w: &AtomicU32| {
            calls += 1;
            w.fetch_xor(MASKED, Ordering::SeqCst);
        };
        assert!(set_link(&w, 3, &mut hostile), "gives up as if linked");
        assert_eq!(calls, 1 + RETRIES_WHILE_BUSY);
        assert_eq!(w.load(Ordering::SeqCst) & BUSY, 0, "BUSY is not left set");
        assert_eq!(w.load(Ordering::SeqCst) & EVTCHN_FIFO_LINK_MASK, 0);
    }
}
