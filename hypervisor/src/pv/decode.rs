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
    /// `xsetbv`.
    Xsetbv,
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
    let size = if opsize16 {
        IoSize::Word
    } else {
        IoSize::Dword
    };
    let insn = match op {
        0xe4..=0xe7 => {
            let port = *b.get(i)?;
            i += 1;
            let size = if op & 1 == 0 { IoSize::Byte } else { size };
            if op < 0xe6 {
                Insn::In {
                    port: Some(port),
                    size,
                }
            } else {
                Insn::Out {
                    port: Some(port),
                    size,
                }
            }
        }
        0xec => Insn::In {
            port: None,
            size: IoSize::Byte,
        },
        0xed => Insn::In { port: None, size },
        0xee => Insn::Out {
            port: None,
            size: IoSize::Byte,
        },
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
                0x01 if b.get(i) == Some(&0xd1) => {
                    i += 1;
                    Insn::Xsetbv
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
        assert_eq!(
            d(&[0xe4, 0x71]),
            Some((
                Insn::In {
                    port: Some(0x71),
                    size: IoSize::Byte
                },
                2
            ))
        );
        assert_eq!(
            d(&[0x66, 0xed]),
            Some((
                Insn::In {
                    port: None,
                    size: IoSize::Word
                },
                2
            ))
        );
        assert_eq!(
            d(&[0xef]),
            Some((
                Insn::Out {
                    port: None,
                    size: IoSize::Dword
                },
                1
            ))
        );
        assert_eq!(
            d(&[0xe6, 0x80]),
            Some((
                Insn::Out {
                    port: Some(0x80),
                    size: IoSize::Byte
                },
                2
            ))
        );
        assert_eq!(d(&[0xe4]), None, "truncated");
    }

    #[test]
    fn control_and_msr_instructions() {
        assert_eq!(
            d(&[0x0f, 0x20, 0xd8]),
            Some((Insn::MovFromCr { cr: 3, reg: 0 }, 3))
        );
        assert_eq!(
            d(&[0x41, 0x0f, 0x22, 0xe0]),
            Some((Insn::MovToCr { cr: 4, reg: 8 }, 4))
        );
        assert_eq!(
            d(&[0x44, 0x0f, 0x20, 0xc1]),
            Some((Insn::MovFromCr { cr: 8, reg: 1 }, 4))
        );
        assert_eq!(
            d(&[0x0f, 0x21, 0xf8]),
            Some((Insn::MovFromDr { dr: 7, reg: 0 }, 3))
        );
        assert_eq!(d(&[0x0f, 0x32]), Some((Insn::Rdmsr, 2)));
        assert_eq!(d(&[0x0f, 0x30]), Some((Insn::Wrmsr, 2)));
        assert_eq!(d(&[0x0f, 0x01, 0xf9]), Some((Insn::Rdtscp, 3)));
        assert_eq!(d(&[0x0f, 0x01, 0xd1]), Some((Insn::Xsetbv, 3)));
        assert_eq!(d(&[0x0f, 0x06]), Some((Insn::Clts, 2)));
        assert_eq!(d(&[0xfa]), Some((Insn::Cli, 1)));
        assert_eq!(d(&[0x90]), None);
        assert_eq!(d(&[0x0f, 0x01, 0x38]), None, "invlpg is not emulated here");
    }

    #[test]
    fn forced_emulation_prefix() {
        assert_eq!(
            forced_cpuid(&[0x0f, 0x0b, b'x', b'e', b'n', 0x0f, 0xa2, 0x90]),
            Some(7)
        );
        assert_eq!(
            forced_cpuid(&[0x0f, 0x0b, b'x', b'e', b'n', 0x90, 0x90]),
            None
        );
        assert_eq!(forced_cpuid(&[0x0f, 0x0b]), None);
    }
}

/// A store to memory that Xen's page-table write emulation handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PteWrite {
    /// `mov reg, mem`.
    MovReg {
        /// Source register.
        reg: u8,
    },
    /// `mov imm32, mem` (sign-extended to the operand size).
    MovImm {
        /// The immediate, sign-extended.
        imm: u64,
    },
    /// `xchg reg, mem`.
    Xchg {
        /// The register exchanged.
        reg: u8,
    },
    /// `cmpxchg reg, mem` (compares with rax).
    Cmpxchg {
        /// The register stored on success.
        reg: u8,
    },
    /// `and`/`or` of an immediate into memory (`80/81/83 /4` and `/1`).
    AluImm {
        /// True for `or`, false for `and`.
        or: bool,
        /// The immediate, sign-extended.
        imm: u64,
    },
    /// `and`/`or` of a register into memory (`20/21`, `08/09`).
    AluReg {
        /// True for `or`, false for `and`.
        or: bool,
        /// The source register.
        reg: u8,
    },
    /// `bts`/`btr` with an immediate bit number (`0f ba /5`, `/6`).
    BitImm {
        /// True for `bts` (set), false for `btr` (reset).
        set: bool,
        /// The bit number (taken modulo the operand size).
        bit: u8,
    },
}

/// A decoded memory store and its operand size and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedWrite {
    /// The operation.
    pub op: PteWrite,
    /// Operand size in bytes (1, 2, 4 or 8).
    pub size: usize,
    /// Instruction length.
    pub len: usize,
}

/// Length of a ModRM memory operand (ModRM, SIB, displacement) starting at `b[0]`; `None` for
/// a register operand or truncated bytes.
fn modrm_mem_len(b: &[u8]) -> Option<(u8, usize)> {
    let modrm = *b.first()?;
    let (md, rm) = (modrm >> 6, modrm & 7);
    if md == 3 {
        return None;
    }
    let mut n = 1;
    if rm == 4 {
        let sib = *b.get(1)?;
        n += 1;
        if md == 0 && sib & 7 == 5 {
            n += 4;
        }
    } else if md == 0 && rm == 5 {
        n += 4; // RIP-relative
    }
    n += match md {
        1 => 1,
        2 => 4,
        _ => 0,
    };
    (b.len() >= n).then_some(((modrm >> 3) & 7, n))
}

/// Decodes a memory store at the start of `b` (Xen's `ptwr_emulated_*` callers see these).
pub fn decode_write(b: &[u8]) -> Option<DecodedWrite> {
    let mut i = 0;
    let mut opsize16 = false;
    while i < b.len().min(14) {
        match b[i] {
            0x66 => opsize16 = true,
            0xf0 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x67 => {}
            _ => break,
        }
        i += 1;
    }
    let mut rex = 0u8;
    if let Some(&r) = b.get(i)
        && r & 0xf0 == 0x40
    {
        rex = r;
        i += 1;
    }
    let wide = rex & 8 != 0;
    let size = if wide {
        8
    } else if opsize16 {
        2
    } else {
        4
    };
    let reg_ext = (rex >> 2 & 1) << 3;
    let op = *b.get(i)?;
    i += 1;
    let (kind, size) = match op {
        0x87..=0x89 => {
            let (reg, n) = modrm_mem_len(b.get(i..)?)?;
            i += n;
            let reg = reg | reg_ext;
            let size = if op == 0x88 { 1 } else { size };
            // Without REX, byte registers 4-7 are AH..BH, not SPL..DIL: not emulated.
            if size == 1 && rex == 0 && (4..8).contains(&reg) {
                return None;
            }
            (
                if op == 0x87 {
                    PteWrite::Xchg { reg }
                } else {
                    PteWrite::MovReg { reg }
                },
                size,
            )
        }
        0xc7 => {
            let (digit, n) = modrm_mem_len(b.get(i..)?)?;
            if digit != 0 {
                return None;
            }
            i += n;
            let imm_len = if size == 2 { 2 } else { 4 };
            let raw = b.get(i..i + imm_len)?;
            i += imm_len;
            let imm = if imm_len == 2 {
                i64::from(i16::from_le_bytes([raw[0], raw[1]])) as u64
            } else {
                i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])) as u64
            };
            (PteWrite::MovImm { imm }, size)
        }
        0x0f if b.get(i) == Some(&0xb1) => {
            i += 1;
            let (reg, n) = modrm_mem_len(b.get(i..)?)?;
            i += n;
            (PteWrite::Cmpxchg { reg: reg | reg_ext }, size)
        }
        0x80 | 0x81 | 0x83 => {
            let (digit, n) = modrm_mem_len(b.get(i..)?)?;
            if digit != 4 && digit != 1 {
                return None;
            }
            i += n;
            let (imm_len, size) = match op {
                0x80 => (1, 1),
                0x83 => (1, size),
                _ => (if size == 2 { 2 } else { 4 }, size),
            };
            let raw = b.get(i..i + imm_len)?;
            i += imm_len;
            let imm = match imm_len {
                1 => i64::from(raw[0] as i8) as u64,
                2 => i64::from(i16::from_le_bytes([raw[0], raw[1]])) as u64,
                _ => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])) as u64,
            };
            (
                PteWrite::AluImm {
                    or: digit == 1,
                    imm,
                },
                size,
            )
        }
        0x08 | 0x09 | 0x20 | 0x21 => {
            let (reg, n) = modrm_mem_len(b.get(i..)?)?;
            i += n;
            let size = if op & 1 == 0 { 1 } else { size };
            (
                PteWrite::AluReg {
                    or: op < 0x20,
                    reg: reg | reg_ext,
                },
                size,
            )
        }
        0x0f if b.get(i) == Some(&0xba) => {
            i += 1;
            let (digit, n) = modrm_mem_len(b.get(i..)?)?;
            if digit != 5 && digit != 6 {
                return None;
            }
            i += n;
            let bit = *b.get(i)?;
            i += 1;
            (
                PteWrite::BitImm {
                    set: digit == 5,
                    bit,
                },
                size,
            )
        }
        _ => return None,
    };
    Some(DecodedWrite {
        op: kind,
        size,
        len: i,
    })
}

#[cfg(test)]
mod write_tests {
    use super::*;

    #[test]
    fn linux_pte_stores() {
        // mov %rbp,(%rbx) as in xen_set_pte_init.
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x2b]),
            Some(DecodedWrite {
                op: PteWrite::MovReg { reg: 5 },
                size: 8,
                len: 3
            })
        );
        // mov %r12,0x8(%rax,%rcx,8)
        assert_eq!(
            decode_write(&[0x4c, 0x89, 0x64, 0xc8, 0x08]),
            Some(DecodedWrite {
                op: PteWrite::MovReg { reg: 12 },
                size: 8,
                len: 5
            })
        );
        // xchg %rax,(%rdi)
        assert_eq!(
            decode_write(&[0x48, 0x87, 0x07]),
            Some(DecodedWrite {
                op: PteWrite::Xchg { reg: 0 },
                size: 8,
                len: 3
            })
        );
        // lock cmpxchg %rsi,(%rdi)
        assert_eq!(
            decode_write(&[0xf0, 0x48, 0x0f, 0xb1, 0x37]),
            Some(DecodedWrite {
                op: PteWrite::Cmpxchg { reg: 6 },
                size: 8,
                len: 5
            })
        );
        // movq $0x0,0x10(%rdi)
        assert_eq!(
            decode_write(&[0x48, 0xc7, 0x47, 0x10, 0, 0, 0, 0]),
            Some(DecodedWrite {
                op: PteWrite::MovImm { imm: 0 },
                size: 8,
                len: 8
            })
        );
        // mov %eax,0x1234(%rip) and a 32-bit store
        assert_eq!(
            decode_write(&[0x89, 0x05, 0x34, 0x12, 0, 0]).map(|d| (d.size, d.len)),
            Some((4, 6))
        );
        // lock andb $0xfd,(%r12) (ptep_set_wrprotect) and friends
        assert_eq!(
            decode_write(&[0x3e, 0x41, 0x80, 0x24, 0x24, 0xfd]),
            Some(DecodedWrite {
                op: PteWrite::AluImm {
                    or: false,
                    imm: u64::MAX - 2
                },
                size: 1,
                len: 6
            })
        );
        assert_eq!(
            decode_write(&[0xf0, 0x48, 0x83, 0x0f, 0x02]),
            Some(DecodedWrite {
                op: PteWrite::AluImm { or: true, imm: 2 },
                size: 8,
                len: 5
            })
        );
        assert_eq!(
            decode_write(&[0xf0, 0x48, 0x21, 0x07]),
            Some(DecodedWrite {
                op: PteWrite::AluReg { or: false, reg: 0 },
                size: 8,
                len: 4
            })
        );
        assert_eq!(
            decode_write(&[0xf0, 0x48, 0x0f, 0xba, 0x37, 0x01]),
            Some(DecodedWrite {
                op: PteWrite::BitImm { set: false, bit: 1 },
                size: 8,
                len: 6
            })
        );
        assert_eq!(
            decode_write(&[0x80, 0x3f, 0x01]),
            None,
            "cmp is not a store"
        );
        // register operands and other opcodes are not stores
        assert_eq!(decode_write(&[0x48, 0x89, 0xc3]), None);
        assert_eq!(decode_write(&[0x90]), None);
        assert_eq!(decode_write(&[0x48, 0x89]), None);
    }
}
