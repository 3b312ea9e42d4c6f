//! A minimal local APIC for PVH guests, in x2APIC mode only (its registers are MSRs
//! 0x800-0x8ff, so no MMIO is decoded), enabled from reset as firmware would leave it.
//!
//! What a PVH Linux uses is there: the id/version/LDR registers, TPR, the spurious-vector
//! register, the LVTs (stored; the LAPIC timer never fires: the guest's clock events are Xen's
//! VCPUOP timers), ESR, EOI, and IPIs to itself (ICR with the self shorthand or its own id,
//! and SELF_IPI). Pending vectors wait in an IRR and are offered one at a time, highest first,
//! whenever the guest can take an interrupt. There is no ISR or priority masking: an EOI only
//! acknowledges (a PVH guest's handlers do not nest interrupts). IPIs to other vCPUs are not
//! delivered (PVH domains run one vCPU here).

/// `MSR_IA32_APICBASE`.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// APIC base: this is the bootstrap processor.
const BASE_BSP: u64 = 1 << 8;
/// APIC base: x2APIC mode.
const BASE_EXTD: u64 = 1 << 10;
/// APIC base: globally enabled.
const BASE_EN: u64 = 1 << 11;
/// The default APIC physical base.
const BASE_ADDR: u64 = 0xfee0_0000;

/// First and last x2APIC MSR.
pub const X2APIC_FIRST: u32 = 0x800;
/// Last x2APIC MSR.
pub const X2APIC_LAST: u32 = 0x8ff;

const REG_ID: u32 = 0x02;
const REG_VERSION: u32 = 0x03;
const REG_TPR: u32 = 0x08;
const REG_PPR: u32 = 0x0a;
const REG_EOI: u32 = 0x0b;
const REG_LDR: u32 = 0x0d;
const REG_SVR: u32 = 0x0f;
const REG_ISR0: u32 = 0x10;
const REG_IRR7: u32 = 0x27;
const REG_ESR: u32 = 0x28;
const REG_ICR: u32 = 0x30;
const REG_LVT_CMCI: u32 = 0x2f;
const REG_LVT_TIMER: u32 = 0x32;
const REG_LVT_ERROR: u32 = 0x37;
const REG_TIMER_INITIAL: u32 = 0x38;
const REG_TIMER_CURRENT: u32 = 0x39;
const REG_TIMER_DIVIDE: u32 = 0x3e;
const REG_SELF_IPI: u32 = 0x3f;

/// Version 0x14 (integrated APIC), 6 LVT entries (max LVT index 5), no EOI suppression.
const VERSION: u64 = 0x0005_0014;
/// LVT mask bit.
const LVT_MASKED: u64 = 1 << 16;

/// One vCPU's local APIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vlapic {
    id: u32,
    bsp: bool,
    tpr: u64,
    svr: u64,
    esr: u64,
    icr: u64,
    lvt: [u64; 7],
    timer_initial: u64,
    timer_divide: u64,
    irr: [u64; 4],
}

/// What a register write asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the register.
    None,
    /// An IPI to another vCPU (APIC id) with a vector: not delivered here.
    IpiElsewhere(u32, u8),
}

impl Vlapic {
    /// The APIC of vCPU `id` (its APIC id), at reset with x2APIC enabled.
    pub fn new(id: u32) -> Self {
        Vlapic {
            id,
            bsp: id == 0,
            tpr: 0,
            // Software-disabled until the guest sets bit 8, spurious vector 0xff.
            svr: 0xff,
            esr: 0,
            icr: 0,
            lvt: [LVT_MASKED; 7],
            timer_initial: 0,
            timer_divide: 0,
            irr: [0; 4],
        }
    }

    /// `MSR_IA32_APICBASE` as the guest reads it.
    pub fn base(&self) -> u64 {
        BASE_ADDR | BASE_EN | BASE_EXTD | if self.bsp { BASE_BSP } else { 0 }
    }

    /// A write of `MSR_IA32_APICBASE`: only the current value is accepted (the APIC stays
    /// enabled in x2APIC mode; leaving it would need the xAPIC MMIO page).
    pub fn set_base(&mut self, value: u64) -> bool {
        value == self.base()
    }

    /// Reads x2APIC MSR `msr`; `None` (#GP) for a register that does not exist or is
    /// write-only.
    pub fn read(&self, msr: u32) -> Option<u64> {
        let reg = msr.checked_sub(X2APIC_FIRST)?;
        Some(match reg {
            REG_ID => u64::from(self.id),
            REG_VERSION => VERSION,
            REG_TPR => self.tpr,
            REG_PPR => self.tpr & 0xf0,
            // Logical x2APIC id: cluster (id >> 4) in bits 31-16, bit (id & 15) below.
            REG_LDR => (u64::from(self.id >> 4) << 16) | (1 << (self.id & 15)),
            REG_SVR => self.svr,
            REG_ISR0..=0x17 => 0,
            0x18..=0x1f => 0, // TMR
            0x20..=REG_IRR7 => {
                let i = (reg - 0x20) as usize;
                (self.irr[i / 2] >> (32 * (i % 2))) & 0xffff_ffff
            }
            REG_ESR => self.esr,
            REG_ICR => self.icr,
            REG_LVT_CMCI => self.lvt[6],
            REG_LVT_TIMER..=REG_LVT_ERROR => self.lvt[(reg - REG_LVT_TIMER) as usize],
            REG_TIMER_INITIAL => self.timer_initial,
            // The timer does not run.
            REG_TIMER_CURRENT => 0,
            REG_TIMER_DIVIDE => self.timer_divide,
            _ => return None,
        })
    }

    /// Writes x2APIC MSR `msr`; `None` (#GP) for a read-only or missing register or a value
    /// with reserved bits set.
    pub fn write(&mut self, msr: u32, value: u64) -> Option<Effect> {
        let reg = msr.checked_sub(X2APIC_FIRST)?;
        match reg {
            REG_TPR if value <= 0xff => self.tpr = value,
            REG_EOI if value == 0 => {}
            REG_SVR if value >> 13 == 0 => self.svr = value,
            REG_ESR if value == 0 => self.esr = 0,
            REG_ICR => {
                self.icr = value & !(1 << 12); // delivery status always idle
                return Some(self.send_ipi(value));
            }
            REG_LVT_CMCI => self.lvt[6] = value & 0x1_17ff,
            REG_LVT_TIMER..=REG_LVT_ERROR => {
                self.lvt[(reg - REG_LVT_TIMER) as usize] = value & 0x7_17ff
            }
            REG_TIMER_INITIAL => self.timer_initial = value & 0xffff_ffff,
            REG_TIMER_DIVIDE => self.timer_divide = value & 0xb,
            REG_SELF_IPI if value <= 0xff => self.set_irr(value as u8),
            _ => return None,
        }
        Some(Effect::None)
    }

    /// An ICR write: fixed-mode IPIs to this vCPU are queued; others are reported.
    fn send_ipi(&mut self, icr: u64) -> Effect {
        let vector = icr as u8;
        let fixed = (icr >> 8) & 7 == 0;
        let dest = (icr >> 32) as u32;
        let to_self = match (icr >> 18) & 3 {
            0 => dest == self.id,
            1 | 2 => true, // self; all including self
            _ => false,    // all excluding self
        };
        if fixed && to_self {
            self.set_irr(vector);
        }
        match (icr >> 18) & 3 {
            0 if dest != self.id => Effect::IpiElsewhere(dest, vector),
            _ => Effect::None,
        }
    }

    /// Marks `vector` pending (vectors below 16 are illegal and dropped).
    pub fn set_irr(&mut self, vector: u8) {
        if vector >= 16 {
            self.irr[usize::from(vector / 64)] |= 1 << (vector % 64);
        }
    }

    /// Takes the highest pending vector, if the APIC is software-enabled.
    pub fn take_highest(&mut self) -> Option<u8> {
        if self.svr & (1 << 8) == 0 {
            return None;
        }
        let i = (0..4).rev().find(|&i| self.irr[i] != 0)?;
        let bit = 63 - self.irr[i].leading_zeros();
        self.irr[i] &= !(1 << bit);
        Some((i as u32 * 64 + bit) as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_reset_state() {
        let a = Vlapic::new(0);
        assert_eq!(a.base(), 0xfee0_0d00);
        assert_eq!(Vlapic::new(3).base(), 0xfee0_0c00);
        assert_eq!(a.read(0x802), Some(0));
        assert_eq!(a.read(0x803), Some(VERSION));
        assert_eq!(Vlapic::new(17).read(0x80d), Some((1 << 16) | 2));
        assert_eq!(a.read(0x832), Some(LVT_MASKED));
        assert_eq!(a.read(0x80b), None); // EOI is write-only
        assert_eq!(a.read(0x900), None);
    }

    #[test]
    fn self_ipis_wait_until_enabled_then_come_highest_first() {
        let mut a = Vlapic::new(0);
        assert_eq!(a.write(0x83f, 0x40), Some(Effect::None));
        // ICR, fixed, shorthand self.
        assert_eq!(a.write(0x830, (1 << 18) | 0x50), Some(Effect::None));
        // ICR, fixed, physical destination = own id.
        assert_eq!(a.write(0x830, 0x30), Some(Effect::None));
        assert_eq!(a.read(0x822), Some(0x1_0001)); // vectors 0x40 and 0x50
        assert_eq!(a.read(0x821), Some(0x1_0000)); // vector 0x30
        assert_eq!(a.take_highest(), None); // software-disabled
        assert_eq!(a.write(0x80f, 0x1ff), Some(Effect::None));
        assert_eq!(a.take_highest(), Some(0x50));
        assert_eq!(a.take_highest(), Some(0x40));
        assert_eq!(a.take_highest(), Some(0x30));
        assert_eq!(a.take_highest(), None);
    }

    #[test]
    fn other_destinations_and_bad_writes() {
        let mut a = Vlapic::new(0);
        assert_eq!(
            a.write(0x830, (5u64 << 32) | 0x60),
            Some(Effect::IpiElsewhere(5, 0x60))
        );
        assert_eq!(a.write(0x830, (3 << 18) | 0x61), Some(Effect::None));
        a.write(0x80f, 0x1ff);
        assert_eq!(a.take_highest(), None);
        assert_eq!(a.write(0x80b, 1), None); // EOI must write 0
        assert_eq!(a.write(0x802, 1), None); // id is read-only
        assert_eq!(a.write(0x83f, 0x100), None);
        assert!(a.set_base(a.base()));
        assert!(!a.set_base(0xfee0_0900)); // leaving x2APIC mode
    }
}
