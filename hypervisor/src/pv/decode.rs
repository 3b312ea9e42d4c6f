//! Decoding the few instructions Xen emulates for PV guests (`xen/arch/x86/pv/emul-priv-op.c`
//! uses the full emulator; the set that faults at CPL3 and is worth emulating is small).
//!
//! Pure: bytes in, instruction out, so it is tested on the host.

/// Operand size of an I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoSize {
    /// `in al`/`out al`.
    Byte,
    /// 16-bit (operand-size prefix).
    Word,
    /// 32-bit.
    Dword,
}

impl IoSize {
    /// Bytes moved.
    pub const fn bytes(self) -> u32 {
        match self {
            IoSize::Byte => 1,
            IoSize::Word => 2,
            IoSize::Dword => 4,
        }
    }
}

/// A decoded privileged instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insn {
    /// `in` from an immediate port or `dx`.
    In {
        /// Port, if immediate (else from dx).
        port: Option<u8>,
        /// Size.
        size: IoSize,
    },
    /// `out` to an immediate port or `dx`.
    Out {
        /// Port, if immediate (else from dx).
        port: Option<u8>,
        /// Size.
        size: IoSize,
    },
    /// `cli`.
    Cli,
    /// `sti`.
    Sti,
    /// `clts`.
    Clts,
    /// `wbinvd`.
    Wbinvd,
    /// `mov %crN, %reg`.
    MovFromCr {
        /// Control register number.
        cr: u8,
        /// Destination general register (0 = rax .. 15 = r15).
        reg: u8,
    },
    /// `mov %reg, %crN`.
    MovToCr {
        /// Control register number.
        cr: u8,
        /// Source general register.
        reg: u8,
    },
    /// `mov %drN, %reg`.
    MovFromDr {
        /// Debug register number.
        dr: u8,
        /// Destination register.
        reg: u8,
    },
    /// `mov %reg, %drN`.
    MovToDr {
        /// Debug register number.
        dr: u8,
        /// Source register.
        reg: u8,
    },
    /// `rdmsr`.
    Rdmsr,
    /// `wrmsr`.
    Wrmsr,
    /// `rdtsc`.
    Rdtsc,
    /// `rdtscp`.
    Rdtscp,
    /// `hlt`.
    Hlt,
}

/// A decoded instruction and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The instruction.
    pub insn: Insn,
    /// Length in bytes, prefixes included.
    pub len: usize,
}

/// Decodes the instruction at the start of `b` (up to 15 bytes), if it is one of [`Insn`].
pub fn decode(b: &[u8]) -> Option<Decoded> {
    let mut i = 0;
    let mut opsize16 = false;
    let (mut rex_r, mut rex_b) = (0u8, 0u8);
    // Legacy prefixes, then an optional REX.
    while i < b.len().min(14) {
        match b[i] {
            0x66 => opsize16 = true,
            0x67 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0xf0 | 0xf2 | 0xf3 => {}
            _ => break,
        }
        i += 1;
    }
    if let Some(&r) = b.get(i)
        && r & 0xf0 == 0x40
    {
        rex_r = (r >> 2) & 1;
        rex_b = r & 1;
        i += 1;
    }
    let op = *b.get(i)?;
    i += 1;
    let size = if opsize16 { IoSize::Word } else { IoSize::Dword };
    let insn = match op {
        0xe4 | 0xe5 | 0xe6 | 0xe7 => {
            let port = *b.get(i)?;
            i += 1;
            let size = if op & 1 == 0 { IoSize::Byte } else { size };
            if op < 0xe6 { Insn::In { port: Some(port), size } } else { Insn::Out { port: Some(port), size } }
        }
        0xec => Insn::In { port: None, size: IoSize::Byte },
        0xed => Insn::In { port: None, size },
        0xee => Insn::Out { port: None, size: IoSize::Byte },
        0xef => Insn::Out { port: None, size },
        0xfa => Insn::Cli,
        0xfb => Insn::Sti,
        0xf4 => Insn::Hlt,
        0x0f => {
            let op2 = *b.get(i)?;
            i += 1;
            match op2 {
                0x06 => Insn::Clts,
                0x09 => Insn::Wbinvd,
                0x30 => Insn::Wrmsr,
                0x31 => Insn::Rdtsc,
                0x32 => Insn::Rdmsr,
                0x01 if b.get(i) == Some(&0xf9) => {
                    i += 1;
                    Insn::Rdtscp
                }
                0x20..=0x23 => {
                    // Always register-direct: the mod bits are ignored for these opcodes.
                    let modrm = *b.get(i)?;
                    i += 1;
                    let ctl = ((modrm >> 3) & 7) | (rex_r << 3);
                    let reg = (modrm & 7) | (rex_b << 3);
                    match op2 {
                        0x20 => Insn::MovFromCr { cr: ctl, reg },
                        0x22 => Insn::MovToCr { cr: ctl, reg },
                        0x21 => Insn::MovFromDr { dr: ctl, reg },
                        _ => Insn::MovToDr { dr: ctl, reg },
                    }
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(Decoded { insn, len: i })
}

/// The forced-emulation prefix `ud2; .ascii "xen"` followed by `cpuid` (Xen's
/// `pv_emulate_forced_invalid_op`): returns the total length (7) if `b` starts with it.
pub fn forced_cpuid(b: &[u8]) -> Option<usize> {
    (b.len() >= 7 && b[..7] == [0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2]).then_some(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> Option<(Insn, usize)> {
        decode(b).map(|x| (x.insn, x.len))
    }

    #[test]
    fn io_instructions() {
        assert_eq!(d(&[0xe4, 0x71]), Some((Insn::In { port: Some(0x71), size: IoSize::Byte }, 2)));
        assert_eq!(d(&[0x66, 0xed]), Some((Insn::In { port: None, size: IoSize::Word }, 2)));
        assert_eq!(d(&[0xef]), Some((Insn::Out { port: None, size: IoSize::Dword }, 1)));
        assert_eq!(d(&[0xe6, 0x80]), Some((Insn::Out { port: Some(0x80), size: IoSize::Byte }, 2)));
        assert_eq!(d(&[0xe4]), None, "truncated");
    }

    #[test]
    fn control_and_msr_instructions() {
        assert_eq!(d(&[0x0f, 0x20, 0xd8]), Some((Insn::MovFromCr { cr: 3, reg: 0 }, 3)));
        assert_eq!(d(&[0x41, 0x0f, 0x22, 0xe0]), Some((Insn::MovToCr { cr: 4, reg: 8 }, 4)));
        assert_eq!(d(&[0x44, 0x0f, 0x20, 0xc1]), Some((Insn::MovFromCr { cr: 8, reg: 1 }, 4)));
        assert_eq!(d(&[0x0f, 0x21, 0xf8]), Some((Insn::MovFromDr { dr: 7, reg: 0 }, 3)));
        assert_eq!(d(&[0x0f, 0x32]), Some((Insn::Rdmsr, 2)));
        assert_eq!(d(&[0x0f, 0x30]), Some((Insn::Wrmsr, 2)));
        assert_eq!(d(&[0x0f, 0x01, 0xf9]), Some((Insn::Rdtscp, 3)));
        assert_eq!(d(&[0x0f, 0x06]), Some((Insn::Clts, 2)));
        assert_eq!(d(&[0xfa]), Some((Insn::Cli, 1)));
        assert_eq!(d(&[0x90]), None);
        assert_eq!(d(&[0x0f, 0x01, 0x38]), None, "invlpg is not emulated here");
    }

    #[test]
    fn forced_emulation_prefix() {
        assert_eq!(forced_cpuid(&[0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2, 0x90]), Some(7));
        assert_eq!(forced_cpuid(&[0x0f, 0x0b, b'x', b'e', b'n', 0x90, 0x90]), None);
        assert_eq!(forced_cpuid(&[0x0f, 0x0b]), None);
    }
}
