//! Physical IRQs as a domain sees them (Xen's `struct pirq` and `arch/x86/irq.c` mapping
//! part): which GSIs the hardware domain mapped to which PIRQ numbers
//! (`PHYSDEVOP_map_pirq`), and which PIRQ is bound to which event channel
//! (`EVTCHNOP_bind_pirq`).
//!
//! This is the bookkeeping Linux's dom0 needs to claim its legacy IRQs as PIRQs (otherwise its
//! dynamic event-channel IRQs take the numbers ACPI, the RTC and the keyboard later ask for).
//! Routing the physical interrupt to the bound port (IO-APIC programming and forwarding) is
//! not done yet: a bound PIRQ port exists but never fires.

use alloc::collections::BTreeMap;
use spin::Mutex;
use xen_abi::DomId;
use xen_abi::errno::Errno;

/// Highest PIRQ number + 1 (Xen's default `nr_pirqs` for dom0 is larger; ample here).
pub const NR_PIRQS: u32 = 1024;

/// One mapped PIRQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pirq {
    /// The GSI it stands for.
    pub gsi: u32,
    /// The event channel it is bound to (0: none).
    pub port: u32,
}

/// A domain's PIRQs.
#[derive(Debug, Default)]
pub struct PirqTable {
    map: BTreeMap<u32, Pirq>,
}

impl PirqTable {
    /// `PHYSDEVOP_map_pirq` of type GSI: maps `gsi` (below `nr_gsis`) to `pirq`, or to the
    /// GSI's own number when `pirq` is negative (what Xen's allocator gives a GSI of dom0).
    /// Mapping the same pair again is fine; a PIRQ or GSI mapped otherwise is -EEXIST.
    pub fn map_gsi(&mut self, gsi: i32, pirq: i32, nr_gsis: u32) -> Result<u32, Errno> {
        let gsi = u32::try_from(gsi).map_err(|_| Errno::EINVAL)?;
        if gsi >= nr_gsis {
            return Err(Errno::EINVAL);
        }
        let pirq = if pirq < 0 { gsi } else { pirq as u32 };
        if pirq >= NR_PIRQS {
            return Err(Errno::EINVAL);
        }
        match self.map.get(&pirq) {
            Some(p) if p.gsi == gsi => return Ok(pirq),
            Some(_) => return Err(Errno::EEXIST),
            None => {}
        }
        if self.map.values().any(|p| p.gsi == gsi) {
            return Err(Errno::EEXIST);
        }
        self.map.insert(pirq, Pirq { gsi, port: 0 });
        Ok(pirq)
    }

    /// `PHYSDEVOP_unmap_pirq`: -EINVAL if `pirq` is not mapped, -EBUSY while bound.
    pub fn unmap(&mut self, pirq: u32) -> Result<(), Errno> {
        match self.map.get(&pirq) {
            None => Err(Errno::EINVAL),
            Some(p) if p.port != 0 => Err(Errno::EBUSY),
            Some(_) => {
                self.map.remove(&pirq);
                Ok(())
            }
        }
    }

    /// `PHYSDEVOP_get_free_pirq`: the lowest unmapped PIRQ at or above `from`.
    pub fn free_pirq(&self, from: u32) -> Result<u32, Errno> {
        (from..NR_PIRQS)
            .find(|p| !self.map.contains_key(p))
            .ok_or(Errno::ENOSPC)
    }

    /// Whether `pirq` is mapped.
    pub fn is_mapped(&self, pirq: u32) -> bool {
        self.map.contains_key(&pirq)
    }

    /// `EVTCHNOP_bind_pirq`'s checks: -EINVAL for an unmapped PIRQ, -EEXIST if bound.
    pub fn check_bind(&self, pirq: u32) -> Result<(), Errno> {
        match self.map.get(&pirq) {
            None => Err(Errno::EINVAL),
            Some(p) if p.port != 0 => Err(Errno::EEXIST),
            Some(_) => Ok(()),
        }
    }

    /// Records that `pirq` is bound to `port` (0 unbinds).
    pub fn set_port(&mut self, pirq: u32, port: u32) {
        if let Some(p) = self.map.get_mut(&pirq) {
            p.port = port;
        }
    }
}

/// Every domain's PIRQs.
static TABLES: Mutex<BTreeMap<DomId, PirqTable>> = Mutex::new(BTreeMap::new());
/// GSIs of the machine (the IO-APICs' pins), set at boot.
static NR_GSIS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(16);

/// Records how many GSIs the IO-APICs provide.
pub fn set_nr_gsis(n: u32) {
    NR_GSIS.store(n.max(16), core::sync::atomic::Ordering::Relaxed);
}

/// GSIs of the machine (Xen's `nr_irqs_gsi`).
pub fn nr_gsis() -> u32 {
    NR_GSIS.load(core::sync::atomic::Ordering::Relaxed)
}

/// Runs `f` on `dom`'s PIRQ table.
pub fn with<R>(dom: DomId, f: impl FnOnce(&mut PirqTable) -> R) -> R {
    f(TABLES.lock().entry(dom).or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsi_mapping_rules() {
        let mut t = PirqTable::default();
        assert_eq!(t.map_gsi(9, -1, 24), Ok(9), "a GSI maps to its own number");
        assert_eq!(t.map_gsi(9, 9, 24), Ok(9), "the same pair again");
        assert_eq!(t.map_gsi(9, 30, 24), Err(Errno::EEXIST), "the GSI is taken");
        assert_eq!(t.map_gsi(4, 9, 24), Err(Errno::EEXIST), "the PIRQ is taken");
        assert_eq!(t.map_gsi(24, -1, 24), Err(Errno::EINVAL), "no such GSI");
        assert_eq!(t.map_gsi(-3, -1, 24), Err(Errno::EINVAL));
        assert_eq!(
            t.map_gsi(1, 1024, 24),
            Err(Errno::EINVAL),
            "beyond NR_PIRQS"
        );
        assert_eq!(t.free_pirq(9), Ok(10));
    }

    #[test]
    fn binding_and_unmapping() {
        let mut t = PirqTable::default();
        assert_eq!(t.check_bind(8), Err(Errno::EINVAL), "not mapped");
        t.map_gsi(8, -1, 24).unwrap();
        assert_eq!(t.check_bind(8), Ok(()));
        t.set_port(8, 5);
        assert_eq!(t.check_bind(8), Err(Errno::EEXIST));
        assert_eq!(t.unmap(8), Err(Errno::EBUSY));
        t.set_port(8, 0);
        assert_eq!(t.unmap(8), Ok(()));
        assert_eq!(t.unmap(8), Err(Errno::EINVAL));
    }
}
