//! eBPF socket-filter programs: build them from instructions and load them with
//! `bpf(BPF_PROG_LOAD)`.
//!
//! The only use the project has is a TUN device's steering program
//! ([`Tun::set_steering_program`](crate::tun::Tun::set_steering_program)), which the
//! kernel runs on every packet it sends to the device to choose the queue. Programs of
//! type `BPF_PROG_TYPE_SOCKET_FILTER` may read the packet with the legacy
//! [`Insn::load_abs`] / [`Insn::load_ind`] instructions, which need the context pointer
//! in `r6` and return big-endian fields in host order; a read past the packet ends the
//! program with return value 0. [`NET_OFF`] makes offsets relative to the network
//! header whatever link header comes before it.
//!
//! Loading needs `CAP_BPF` or `CAP_SYS_ADMIN` (root). A program the verifier rejects is
//! reported with the verifier's log.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// Offsets of [`Insn::load_abs`] and [`Insn::load_ind`] relative to the network header
/// (the kernel's `SKF_NET_OFF`).
pub const NET_OFF: i32 = -0x100000;

/// Operand sizes of packet loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// One byte.
    Byte,
    /// Two bytes, big-endian in the packet.
    Half,
    /// Four bytes, big-endian in the packet.
    Word,
}

/// Registers `r0` (return value) to `r10` (frame pointer).
pub type Reg = u8;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// Destination register in the low four bits, source in the high four.
    regs: u8,
    off: i16,
    imm: i32,
}

const LD: u8 = 0x00;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const ABS: u8 = 0x20;
const IND: u8 = 0x40;
const K: u8 = 0x00;
const X: u8 = 0x08;
const ADD: u8 = 0x00;
const MUL: u8 = 0x20;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const MOD: u8 = 0x90;
const MOV: u8 = 0xb0;
const JNE: u8 = 0x50;
const EXIT: u8 = 0x90;

impl Insn {
    const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    /// `dst = src` (64 bits).
    pub const fn mov_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(ALU64 | MOV | X, dst, src, 0, 0)
    }

    /// `dst = imm`.
    pub const fn mov_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | MOV | K, dst, 0, 0, imm)
    }

    /// `dst += src`.
    pub const fn add_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(ALU64 | ADD | X, dst, src, 0, 0)
    }

    /// `dst &= imm`.
    pub const fn and_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | AND | K, dst, 0, 0, imm)
    }

    /// `dst <<= imm`.
    pub const fn lsh_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | LSH | K, dst, 0, 0, imm)
    }

    /// `dst %= imm` (`imm` must not be 0).
    pub const fn mod_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU64 | MOD | K, dst, 0, 0, imm)
    }

    /// `dst = (dst as u32).wrapping_mul(imm as u32)`, zero-extended (32-bit ALU).
    pub const fn mul32_imm(dst: Reg, imm: u32) -> Insn {
        Insn::new(ALU | MUL | K, dst, 0, 0, imm as i32)
    }

    /// `dst = (dst as u32) >> imm`, zero-extended (32-bit ALU).
    pub const fn rsh32_imm(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU | RSH | K, dst, 0, 0, imm)
    }

    /// `dst = (dst as u32) % imm`, zero-extended (32-bit ALU; `imm` must not be 0).
    pub const fn mod32_imm(dst: Reg, imm: u32) -> Insn {
        Insn::new(ALU | MOD | K, dst, 0, 0, imm as i32)
    }

    /// `if dst != imm { pc += off }` (`off` counts instructions after this one).
    pub const fn jne_imm(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(JMP | JNE | K, dst, 0, off, imm)
    }

    /// `r0 = packet[offset]`, big-endian fields in host order (`r6` must hold the
    /// context).
    pub const fn load_abs(size: Size, offset: i32) -> Insn {
        Insn::new(LD | ABS | size_bits(size), 0, 0, 0, offset)
    }

    /// `r0 = packet[src + offset]`, like [`Insn::load_abs`].
    pub const fn load_ind(size: Size, src: Reg, offset: i32) -> Insn {
        Insn::new(LD | IND | size_bits(size), 0, src, 0, offset)
    }

    /// Returns `r0`.
    pub const fn exit() -> Insn {
        Insn::new(JMP | EXIT, 0, 0, 0, 0)
    }
}

const fn size_bits(size: Size) -> u8 {
    match size {
        Size::Word => 0x00,
        Size::Half => 0x08,
        Size::Byte => 0x10,
    }
}

/// A loaded socket-filter program; the kernel frees it when the last reference (this
/// fd, or a device it is attached to) goes away.
#[derive(Debug)]
pub struct SocketFilter {
    fd: OwnedFd,
}

/// The first fields of `union bpf_attr` for `BPF_PROG_LOAD`; the kernel zero-fills
/// the rest of the union.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const LICENSE: &CStr = c"GPL";

impl SocketFilter {
    /// Loads `insns` as a socket-filter program named `name` (at most 15 bytes are
    /// kept). On a verifier rejection the error carries the verifier's log.
    pub fn load(name: &str, insns: &[Insn]) -> Result<SocketFilter> {
        match Self::load_with_log(name, insns, &mut []) {
            Ok(f) => Ok(f),
            Err(e) if e.errno() == Some(libc::EACCES) || e.errno() == Some(libc::EINVAL) => {
                let mut log = vec![0u8; 64 * 1024];
                let again = Self::load_with_log(name, insns, &mut log);
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                match again {
                    Ok(f) => Ok(f),
                    Err(e) if !text.is_empty() => Err(Error::new(
                        "bpf(BPF_PROG_LOAD)",
                        std::io::Error::new(e.kind(), format!("{}: {text}", e.source)),
                    )),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn load_with_log(name: &str, insns: &[Insn], log: &mut [u8]) -> Result<SocketFilter> {
        let mut prog_name = [0u8; 16];
        for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
            *d = if s.is_ascii_alphanumeric() || s == b'_' {
                s
            } else {
                b'_'
            };
        }
        let attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
            kern_version: 0,
            prog_flags: 0,
            prog_name,
        };
        // SAFETY: `attr` is a valid, initialised BPF_PROG_LOAD attribute of the size
        // passed; the instruction array, licence string and log buffer it points to
        // outlive the call, and the kernel writes only into the log buffer, within
        // `log_size` bytes.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoadAttr,
                std::mem::size_of::<ProgLoadAttr>(),
            )
        };
        if fd < 0 {
            return Err(Error::last("bpf(BPF_PROG_LOAD)"));
        }
        // SAFETY: the kernel returned a fresh program fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(SocketFilter { fd })
    }
}

impl AsRawFd for SocketFilter {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for SocketFilter {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_expects() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        let i = Insn::mov_reg(6, 1);
        assert_eq!((i.code, i.regs), (0xbf, 0x16));
        let i = Insn::load_ind(Size::Half, 7, NET_OFF + 2);
        assert_eq!((i.code, i.regs, i.imm), (0x48, 0x70, NET_OFF + 2));
        assert_eq!(Insn::load_abs(Size::Byte, 9).code, 0x30);
        assert_eq!(Insn::exit().code, 0x95);
        assert_eq!(Insn::jne_imm(0, 6, 13).code, 0x55);
        assert_eq!(Insn::mod_imm(0, 3).code, 0x97);
        assert_eq!(Insn::mul32_imm(0, 0x9e37_79b1).code, 0x24);
        assert_eq!(Insn::rsh32_imm(0, 16).code, 0x74);
        assert_eq!(Insn::mod32_imm(0, 3).code, 0x94);
    }

    /// `r0 = 7; exit` loads (as root), and a program that reads an uninitialised
    /// register is rejected with the verifier's explanation.
    #[test]
    fn loads_a_program_and_reports_verifier_rejections() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "loading BPF programs needs root"
            );
            eprintln!("skipping: loading BPF programs needs root");
            return;
        }
        let ok = SocketFilter::load("seven", &[Insn::mov_imm(0, 7), Insn::exit()]).unwrap();
        assert!(ok.as_raw_fd() >= 0);
        let err = SocketFilter::load("bad", &[Insn::add_reg(0, 3), Insn::exit()]).unwrap_err();
        assert!(err.to_string().contains("R"), "{err}");
    }
}
