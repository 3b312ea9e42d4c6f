//! The Fixed ACPI Description Table ("FACP"): fixed hardware registers (PM blocks, PM timer,
//! reset register), the DSDT/FACS pointers and IA-PC boot flags.
//!
//! The FADT grew with every ACPI revision and firmware often mislabels its revision, so, like
//! ACPICA, the table *length* decides which fields exist: fields beyond it read as absent/zero.
//! Where a 64-bit `X_` field and its legacy 32-bit twin both exist, a non-zero `X_` value wins.

use super::AcpiError;
use super::gas::{GAS_LEN, GenericAddress};
use super::sdt::Table;

/// FADT flag: the PM timer counter is 32 bits wide (24 bits otherwise).
pub const TMR_VAL_EXT: u32 = 1 << 8;
/// FADT flag: the reset register is supported.
pub const RESET_REG_SUP: u32 = 1 << 10;
/// FADT flag: hardware-reduced ACPI (no fixed PM hardware, no SCI/PM timer).
pub const HW_REDUCED_ACPI: u32 = 1 << 20;

/// IA-PC boot architecture flag: legacy (ISA/LPC) devices are present.
pub const BOOT_LEGACY_DEVICES: u16 = 1 << 0;
/// IA-PC boot architecture flag: an 8042 keyboard controller is present.
pub const BOOT_8042: u16 = 1 << 1;
/// IA-PC boot architecture flag: VGA must not be probed.
pub const BOOT_VGA_NOT_PRESENT: u16 = 1 << 2;
/// IA-PC boot architecture flag: MSIs must not be enabled.
pub const BOOT_MSI_NOT_SUPPORTED: u16 = 1 << 3;
/// IA-PC boot architecture flag: OSPM must not enable PCIe ASPM.
pub const BOOT_PCIE_ASPM_CONTROLS: u16 = 1 << 4;
/// IA-PC boot architecture flag: there is no CMOS RTC.
pub const BOOT_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// Length of an ACPI 1.0 FADT (ends after `Flags`).
pub const FADT_V1_LEN: u32 = 116;
/// Length up to and including `MinorVersion` (ACPI 1.0b-style tables with the reset register);
/// up to this, `IAPC_BOOT_ARCH` was reserved and is ignored (as ACPICA does).
const FADT_V2_LEN: u32 = 132;

// Field offsets (ACPI 6.5 table 5.9).
const FIRMWARE_CTRL: u32 = 36;
const DSDT: u32 = 40;
const SCI_INT: u32 = 46;
const SMI_CMD: u32 = 48;
const ACPI_ENABLE: u32 = 52;
const ACPI_DISABLE: u32 = 53;
const PM1A_EVT_BLK: u32 = 56;
const PM1B_EVT_BLK: u32 = 60;
const PM1A_CNT_BLK: u32 = 64;
const PM1B_CNT_BLK: u32 = 68;
const PM_TMR_BLK: u32 = 76;
const PM1_EVT_LEN: u32 = 88;
const PM1_CNT_LEN: u32 = 89;
const PM_TMR_LEN: u32 = 91;
const CENTURY: u32 = 108;
const IAPC_BOOT_ARCH: u32 = 109;
const FLAGS: u32 = 112;
const RESET_REG: u32 = 116;
const RESET_VALUE: u32 = 128;
const MINOR_VERSION: u32 = 131;
const X_FIRMWARE_CTRL: u32 = 132;
const X_DSDT: u32 = 140;
const X_PM1A_EVT_BLK: u32 = 148;
const X_PM1B_EVT_BLK: u32 = 160;
const X_PM1A_CNT_BLK: u32 = 172;
const X_PM1B_CNT_BLK: u32 = 184;
const X_PM_TMR_BLK: u32 = 208;

/// The ACPI PM timer: a 3.579545 MHz free-running counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmTimer {
    /// Where the counter is read (normally an I/O port).
    pub block: GenericAddress,
    /// The counter is 32 bits wide (`TMR_VAL_EXT`); otherwise 24.
    pub is_32bit: bool,
}

/// A parsed FADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fadt {
    /// Header revision (unreliable; the length tells which fields exist).
    pub revision: u8,
    /// `FADT Minor Version` (ACPI 5.1+), 0 when absent.
    pub minor_version: u8,
    /// Table length.
    pub length: u32,
    /// Fixed feature flags ([`TMR_VAL_EXT`], [`RESET_REG_SUP`], [`HW_REDUCED_ACPI`], ...).
    pub flags: u32,
    /// SCI interrupt (an ISA IRQ on PCs, subject to MADT overrides).
    pub sci_interrupt: u16,
    /// SMI command port used to hand ACPI ownership to the OS (0: already in ACPI mode).
    pub smi_command_port: u32,
    /// Value written to `smi_command_port` to enable ACPI mode.
    pub acpi_enable: u8,
    /// Value written to `smi_command_port` to disable ACPI mode.
    pub acpi_disable: u8,
    /// PM1a event block (status + enable registers).
    pub pm1a_event: Option<GenericAddress>,
    /// PM1b event block.
    pub pm1b_event: Option<GenericAddress>,
    /// PM1a control block.
    pub pm1a_control: Option<GenericAddress>,
    /// PM1b control block.
    pub pm1b_control: Option<GenericAddress>,
    /// PM timer, when the platform has one.
    pub pm_timer: Option<PmTimer>,
    /// Reset register, when the table has the field and it is non-zero; check
    /// [`reset_supported`](Self::reset_supported) before using it.
    pub reset_register: Option<GenericAddress>,
    /// Value to write to the reset register.
    pub reset_value: u8,
    /// Physical address of the DSDT (`X_DSDT` if set, else `DSDT`).
    pub dsdt: Option<u64>,
    /// Physical address of the FACS (`X_FIRMWARE_CTRL` if set, else `FIRMWARE_CTRL`).
    pub facs: Option<u64>,
    /// CMOS RAM index of the century byte, 0 if not supported.
    pub century: u8,
    /// IA-PC boot architecture flags (`BOOT_*`); 0 for tables too old to define them.
    pub iapc_boot_arch: u16,
}

impl Fadt {
    /// Whether the reset register may be used to reset the machine.
    pub fn reset_supported(&self) -> bool {
        self.flags & RESET_REG_SUP != 0 && self.reset_register.is_some()
    }

    /// Whether the platform is hardware-reduced ACPI.
    pub fn hw_reduced(&self) -> bool {
        self.flags & HW_REDUCED_ACPI != 0
    }

    /// Parses a validated FADT of any length.
    pub(crate) fn parse(t: &Table<'_>) -> Result<Self, AcpiError> {
        let u8_or_0 = |o| Ok::<_, AcpiError>(t.opt_bytes::<1>(o)?.map_or(0, |b| b[0]));
        let u16_or_0 = |o| Ok::<_, AcpiError>(t.opt_bytes(o)?.map_or(0, u16::from_le_bytes));
        let u32_or_0 = |o| Ok::<_, AcpiError>(t.opt_bytes(o)?.map_or(0, u32::from_le_bytes));
        let u64_or_0 = |o| Ok::<_, AcpiError>(t.opt_bytes(o)?.map_or(0, u64::from_le_bytes));
        let gas = |o| {
            Ok::<_, AcpiError>(
                t.opt_bytes::<GAS_LEN>(o)?
                    .map(|b| GenericAddress::from_bytes(&b)),
            )
        };

        // A register block: the X_ GAS if present and non-zero, else the legacy I/O port whose
        // width comes from the matching length byte.
        let block = |legacy: u32, len: u32, x: u32| -> Result<Option<GenericAddress>, AcpiError> {
            let width = u8_or_0(len)?.saturating_mul(8);
            if let Some(mut g) = gas(x)?.filter(|g| g.address != 0) {
                // Some firmware leaves the X_ width zero; the legacy length is still right.
                if g.bit_width == 0 {
                    g.bit_width = width;
                }
                return Ok(Some(g));
            }
            let port = u32_or_0(legacy)?;
            Ok((port != 0).then(|| GenericAddress::io(u64::from(port), width)))
        };
        let addr = |legacy: u32, x: u32| -> Result<Option<u64>, AcpiError> {
            let x = u64_or_0(x)?;
            let a = if x != 0 {
                x
            } else {
                u64::from(u32_or_0(legacy)?)
            };
            Ok((a != 0).then_some(a))
        };

        let flags = u32_or_0(FLAGS)?;
        let pm_timer = block(PM_TMR_BLK, PM_TMR_LEN, X_PM_TMR_BLK)?.map(|block| PmTimer {
            block,
            is_32bit: flags & TMR_VAL_EXT != 0,
        });

        Ok(Self {
            revision: t.header().revision,
            minor_version: u8_or_0(MINOR_VERSION)?,
            length: t.len(),
            flags,
            sci_interrupt: u16_or_0(SCI_INT)?,
            smi_command_port: u32_or_0(SMI_CMD)?,
            acpi_enable: u8_or_0(ACPI_ENABLE)?,
            acpi_disable: u8_or_0(ACPI_DISABLE)?,
            pm1a_event: block(PM1A_EVT_BLK, PM1_EVT_LEN, X_PM1A_EVT_BLK)?,
            pm1b_event: block(PM1B_EVT_BLK, PM1_EVT_LEN, X_PM1B_EVT_BLK)?,
            pm1a_control: block(PM1A_CNT_BLK, PM1_CNT_LEN, X_PM1A_CNT_BLK)?,
            pm1b_control: block(PM1B_CNT_BLK, PM1_CNT_LEN, X_PM1B_CNT_BLK)?,
            pm_timer,
            reset_register: gas(RESET_REG)?.filter(|g| g.address != 0),
            reset_value: u8_or_0(RESET_VALUE)?,
            dsdt: addr(DSDT, X_DSDT)?,
            facs: addr(FIRMWARE_CTRL, X_FIRMWARE_CTRL)?,
            century: u8_or_0(CENTURY)?,
            iapc_boot_arch: if t.len() > FADT_V2_LEN {
                u16_or_0(IAPC_BOOT_ARCH)?
            } else {
                0
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{FadtBuilder, Machine, gas_bytes};
    use super::super::gas::AddressSpace;
    use super::super::sdt::Signature;
    use super::*;

    const BASE: u64 = Machine::ACPI_BASE + 0x5000;

    fn parse_at(m: &Machine) -> Result<Fadt, AcpiError> {
        Fadt::parse(&Table::load(m, BASE, Signature::FADT)?)
    }

    #[test]
    fn v1_short_fadt() {
        let mut m = Machine::pc();
        m.write(BASE, &FadtBuilder::v1().build());
        let f = parse_at(&m).unwrap();
        assert_eq!(f.length, FADT_V1_LEN);
        assert_eq!(f.revision, 1);
        assert_eq!(f.sci_interrupt, 9);
        assert_eq!(f.smi_command_port, 0xb2);
        assert_eq!((f.acpi_enable, f.acpi_disable), (0xf0, 0xf1));
        assert_eq!(f.pm1a_event, Some(GenericAddress::io(0x400, 32)));
        assert_eq!(f.pm1b_event, None);
        assert_eq!(f.pm1a_control, Some(GenericAddress::io(0x404, 16)));
        assert_eq!(f.pm1b_control, None);
        let t = f.pm_timer.unwrap();
        assert_eq!(t.block.io_port(), Some(0x408));
        assert_eq!(t.block.bit_width, 32);
        assert!(!t.is_32bit);
        assert_eq!(f.dsdt, Some(0x7fee_8000));
        assert_eq!(f.facs, Some(0x7fee_9000));
        assert_eq!(f.century, 0x32);
        // Bytes 109..111 were reserved in ACPI 1.0: not interpreted even if set.
        assert_eq!(f.iapc_boot_arch, 0);
        // The reset register lies beyond a v1 table.
        assert_eq!(f.reset_register, None);
        assert!(!f.reset_supported());
        assert!(!f.hw_reduced());
        assert_eq!(f.minor_version, 0);
    }

    #[test]
    fn v6_full_fadt_prefers_x_fields() {
        let mut m = Machine::pc();
        m.write(BASE, &FadtBuilder::v6().build());
        let f = parse_at(&m).unwrap();
        assert_eq!(f.length, 276);
        assert_eq!(f.revision, 6);
        assert_eq!(f.minor_version, 5);
        assert!(f.pm_timer.unwrap().is_32bit);
        assert_eq!(f.pm_timer.unwrap().block.io_port(), Some(0x608));
        assert_eq!(f.pm1a_event.unwrap().io_port(), Some(0x600));
        // X_ width left zero by the firmware: filled from the legacy length byte.
        assert_eq!(f.pm1a_control.unwrap().bit_width, 16);
        assert_eq!(f.pm1b_event, None);
        let r = f.reset_register.unwrap();
        assert_eq!(r.space, AddressSpace::SystemIo);
        assert_eq!(r.io_port(), Some(0xcf9));
        assert_eq!(f.reset_value, 6);
        assert!(f.reset_supported());
        assert_eq!(f.dsdt, Some(0x1_2345_6000));
        assert_eq!(f.facs, Some(0x7fee_9000), "X_FACS zero: legacy FACS used");
        assert_eq!(f.iapc_boot_arch, BOOT_LEGACY_DEVICES | BOOT_8042);
        assert_eq!(f.century, 0x32);
    }

    #[test]
    fn reset_register_needs_flag() {
        let mut m = Machine::pc();
        m.write(BASE, &FadtBuilder::v6().flags(TMR_VAL_EXT).build());
        let f = parse_at(&m).unwrap();
        assert!(f.reset_register.is_some());
        assert!(!f.reset_supported());
    }

    #[test]
    fn hw_reduced_without_pm_blocks() {
        let mut m = Machine::pc();
        let mut b = FadtBuilder::v6().flags(HW_REDUCED_ACPI);
        for off in [PM1A_EVT_BLK, PM1A_CNT_BLK, PM_TMR_BLK] {
            b = b.u32(off, 0);
        }
        for off in [X_PM1A_EVT_BLK, X_PM1A_CNT_BLK, X_PM_TMR_BLK] {
            b = b.bytes(off, &[0; GAS_LEN]);
        }
        m.write(BASE, &b.build());
        let f = parse_at(&m).unwrap();
        assert!(f.hw_reduced());
        assert_eq!(f.pm_timer, None);
        assert_eq!(f.pm1a_event, None);
        assert_eq!(f.pm1a_control, None);
    }

    #[test]
    fn mmio_x_block() {
        let mut m = Machine::pc();
        let b = FadtBuilder::v6().bytes(X_PM_TMR_BLK, &gas_bytes(0, 32, 0, 3, 0xfed8_0008));
        m.write(BASE, &b.build());
        let t = parse_at(&m).unwrap().pm_timer.unwrap();
        assert_eq!(t.block.mmio_address(), Some(0xfed8_0008));
        assert_eq!(t.block.io_port(), None);
    }

    #[test]
    fn odd_lengths_read_only_what_exists() {
        // Header only: everything absent, no error.
        let mut m = Machine::pc();
        m.write(BASE, &FadtBuilder::v6().truncate(36).build());
        let f = parse_at(&m).unwrap();
        assert_eq!(f.pm_timer, None);
        assert_eq!(f.dsdt, None);
        assert_eq!(f.flags, 0);

        // Cut in the middle of X_DSDT: the legacy DSDT is used, the partial field ignored.
        let mut m = Machine::pc();
        m.write(BASE, &FadtBuilder::v6().truncate(X_DSDT + 4).build());
        let f = parse_at(&m).unwrap();
        assert_eq!(f.dsdt, Some(0x7fee_8000));
        assert!(f.reset_supported());
        assert_eq!(f.iapc_boot_arch, BOOT_LEGACY_DEVICES | BOOT_8042);

        // ACPI 1.0b-style table ending after the reset value: boot flags still reserved.
        let mut m = Machine::pc();
        m.write(BASE, &FadtBuilder::v6().truncate(FADT_V2_LEN).build());
        let f = parse_at(&m).unwrap();
        assert!(f.reset_supported());
        assert_eq!(f.iapc_boot_arch, 0);
    }
}
