//! Active grant entries: the hypervisor's private shadow of a granted entry while it is pinned
//! (Xen's `struct active_grant_entry`).
//!
//! While an entry has pins, the hypervisor uses the frame, grantee and bounds recorded here,
//! never what the guest has written into the shared entry since: the guest can rewrite the
//! shared entry at will, but it cannot revoke a pinned grant (see [`super::flags`]).

use crate::pvmm::Mfn;
use xen_abi::DomId;
use xen_abi::grant_table::{GNTMAP_device_map, GNTMAP_host_map, GNTMAP_readonly, GrantRef};

/// The four byte-wide pin counters packed into [`ActiveEntry::pin`] (`GNTPIN_*`), so "is it
/// pinned at all" is one comparison.
pub mod pin {
    /// Width of each counter.
    pub const COUNTER_BITS: u32 = 8;
    const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;

    /// One writable host-CPU mapping (or writable copy in progress).
    pub const HSTW_INC: u32 = 1;
    /// All writable host-CPU mappings.
    pub const HSTW_MASK: u32 = COUNTER_MASK;
    /// One read-only host-CPU mapping (or read-only copy in progress).
    pub const HSTR_INC: u32 = 1 << COUNTER_BITS;
    /// All read-only host-CPU mappings.
    pub const HSTR_MASK: u32 = COUNTER_MASK << COUNTER_BITS;
    /// One writable device mapping.
    pub const DEVW_INC: u32 = 1 << (2 * COUNTER_BITS);
    /// All writable device mappings.
    pub const DEVW_MASK: u32 = COUNTER_MASK << (2 * COUNTER_BITS);
    /// One read-only device mapping.
    pub const DEVR_INC: u32 = 1 << (3 * COUNTER_BITS);
    /// All read-only device mappings.
    pub const DEVR_MASK: u32 = COUNTER_MASK << (3 * COUNTER_BITS);

    /// `GNTPIN_incr2oflow_mask`: the top bit of each counter `incr` is about to increment.
    /// A pin is refused once any of those counters reaches 128, well before it could wrap
    /// into its neighbour; counters that are not incremented are not checked.
    pub const fn overflow_mask(incr: u32) -> u32 {
        incr << (COUNTER_BITS - 1)
    }
}

/// The pin increment of a map request (host and/or device, read-only or writable); 0 if the
/// request asks for neither kind of mapping.
pub const fn map_pin_increment(map_flags: u32) -> u32 {
    let ro = map_flags & GNTMAP_readonly != 0;
    let mut incr = 0;
    if map_flags & GNTMAP_device_map != 0 {
        incr += if ro { pin::DEVR_INC } else { pin::DEVW_INC };
    }
    if map_flags & GNTMAP_host_map != 0 {
        incr += if ro { pin::HSTR_INC } else { pin::HSTW_INC };
    }
    incr
}

/// The pin increment of one copy buffer.
pub const fn copy_pin_increment(readonly: bool) -> u32 {
    if readonly {
        pin::HSTR_INC
    } else {
        pin::HSTW_INC
    }
}

/// One active entry. All fields but `pin` are meaningful only while `pin != 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveEntry {
    /// Packed pin counters ([`pin`]).
    pub pin: u32,
    /// The grantee: the only domain that may add pins.
    pub domid: DomId,
    /// The domain that granted the frame (differs from the table's owner only for transitive
    /// grants, which this implementation does not follow).
    pub src_domid: DomId,
    /// First byte of a sub-page grant (0 for full pages).
    pub start: u16,
    /// Length of a sub-page grant (4096 for full pages).
    pub length: u16,
    /// A sub-page grant: copy only, never mapped.
    pub is_sub_page: bool,
    /// The entry in `src_domid`'s table.
    pub trans_gref: GrantRef,
    /// The granted machine frame.
    pub mfn: Mfn,
    /// The guest frame the granter named when the entry was first pinned (diagnostics).
    pub gfn: u64,
}

impl ActiveEntry {
    /// Any writable pin (host or device).
    pub const fn has_write_pins(&self) -> bool {
        self.pin & (pin::HSTW_MASK | pin::DEVW_MASK) != 0
    }

    /// The frame references the pins stand for, as `(general, writable type)`: every pin
    /// (host or device mapping, or copy in progress) holds one general reference on the
    /// frame, and every writable one a writable type reference too (for a PV granter; see
    /// `ops::host_mapping_takes_type`). These are what the pins' holders will drop, which is
    /// what a dying granter must leave on a frame it cannot free yet.
    pub fn held_references(&self) -> (u64, u64) {
        let count = |mask: u32, shift: u32| u64::from((self.pin & mask) >> shift);
        let hstw = count(pin::HSTW_MASK, 0);
        let hstr = count(pin::HSTR_MASK, pin::COUNTER_BITS);
        let devw = count(pin::DEVW_MASK, 2 * pin::COUNTER_BITS);
        let devr = count(pin::DEVR_MASK, 3 * pin::COUNTER_BITS);
        (hstw + hstr + devw + devr, hstw + devw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_and_overflow_masks() {
        assert_eq!(map_pin_increment(GNTMAP_host_map), pin::HSTW_INC);
        assert_eq!(
            map_pin_increment(GNTMAP_host_map | GNTMAP_device_map | GNTMAP_readonly),
            pin::HSTR_INC | pin::DEVR_INC
        );
        assert_eq!(map_pin_increment(GNTMAP_readonly), 0);
        assert_eq!(pin::overflow_mask(pin::HSTW_INC), 0x80);
        assert_eq!(
            pin::overflow_mask(pin::HSTR_INC | pin::DEVW_INC),
            0x0080_8000
        );
    }

    #[test]
    fn references_held_by_pins() {
        let a = ActiveEntry {
            pin: 2 * pin::HSTW_INC + pin::HSTR_INC + 3 * pin::DEVW_INC + pin::DEVR_INC,
            ..ActiveEntry::default()
        };
        assert_eq!(a.held_references(), (7, 5));
        assert_eq!(ActiveEntry::default().held_references(), (0, 0));
        let ro = ActiveEntry {
            pin: pin::HSTR_INC | pin::DEVR_INC,
            ..ActiveEntry::default()
        };
        assert_eq!(ro.held_references(), (2, 0));
    }
}
