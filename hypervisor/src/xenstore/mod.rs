//! A minimal xenstore served by the hypervisor to boot-time domUs (what `xenstored` does for a
//! toolstack; Xen's PV shim has the same need). Without one, a Linux PV domU blocks forever at
//! its first xenbus request.
//!
//! The store is a tree of `path -> value` per domain, seeded with what `xl` writes for a
//! domain (`name`, `domid`, `memory/target`, `cpu/N/availability`, the `device` and `control`
//! directories); a domain reads and writes its own subtree (`/local/domain/<id>/`, also as
//! relative paths). Watches are registered and fire once at once, as xenstored does; later
//! changes fire the matching watches. Transactions are accepted and applied directly (one
//! writer per domain, so they cannot conflict). What the store does not know is `ENOENT`.
//!
//! The wire format is `xen/include/public/io/xs_wire.h`: a 16-byte header (type, request id,
//! transaction id, payload length) and the payload, through the rings of
//! `xenstore_domain_interface` ([`ring`]).

#[cfg(target_os = "none")]
pub mod ring;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// Message types (`enum xsd_sockmsg_type`).
pub mod msg {
    /// `XS_DIRECTORY`.
    pub const DIRECTORY: u32 = 1;
    /// `XS_READ`.
    pub const READ: u32 = 2;
    /// `XS_GET_PERMS`.
    pub const GET_PERMS: u32 = 3;
    /// `XS_WATCH`.
    pub const WATCH: u32 = 4;
    /// `XS_UNWATCH`.
    pub const UNWATCH: u32 = 5;
    /// `XS_TRANSACTION_START`.
    pub const TRANSACTION_START: u32 = 6;
    /// `XS_TRANSACTION_END`.
    pub const TRANSACTION_END: u32 = 7;
    /// `XS_GET_DOMAIN_PATH`.
    pub const GET_DOMAIN_PATH: u32 = 10;
    /// `XS_WRITE`.
    pub const WRITE: u32 = 11;
    /// `XS_MKDIR`.
    pub const MKDIR: u32 = 12;
    /// `XS_RM`.
    pub const RM: u32 = 13;
    /// `XS_SET_PERMS`.
    pub const SET_PERMS: u32 = 14;
    /// `XS_WATCH_EVENT`.
    pub const WATCH_EVENT: u32 = 15;
    /// `XS_ERROR`.
    pub const ERROR: u32 = 16;
    /// `XS_RESET_WATCHES`.
    pub const RESET_WATCHES: u32 = 21;
}

/// Bytes of a message header (`struct xsd_sockmsg`).
pub const HEADER: usize = 16;
/// Largest payload (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;

/// A message: header fields and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `XS_*`.
    pub kind: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Message {
    /// Parses a header; `None` if `b` is shorter than one.
    pub fn header(b: &[u8]) -> Option<(u32, u32, u32, usize)> {
        let w = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        Some((w(0)?, w(4)?, w(8)?, w(12)? as usize))
    }

    /// The message on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER + self.payload.len());
        for w in [
            self.kind,
            self.req_id,
            self.tx_id,
            self.payload.len() as u32,
        ] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v.extend_from_slice(&self.payload);
        v
    }
}

/// One domain's store and watches.
#[derive(Debug, Default)]
pub struct Store {
    domid: u16,
    nodes: BTreeMap<String, String>,
    watches: Vec<(String, String)>,
    next_tx: u32,
}

impl Store {
    /// A store seeded as `xl create` seeds a PV domU's subtree.
    pub fn for_domain(domid: u16, name: &str, memory_kib: u64, vcpus: u32) -> Self {
        let mut s = Store {
            domid,
            next_tx: 1,
            ..Store::default()
        };
        let home = s.home();
        let mut put = |k: &str, v: String| {
            s.nodes.insert(format!("{home}/{k}"), v);
        };
        put("name", name.to_string());
        put("domid", domid.to_string());
        put("memory/target", memory_kib.to_string());
        put("memory/static-max", memory_kib.to_string());
        put("device", String::new());
        put("control", String::new());
        put("data", String::new());
        for c in 0..vcpus {
            put(&format!("cpu/{c}/availability"), "online".to_string());
        }
        s
    }

    /// The domain's home path.
    fn home(&self) -> String {
        format!("/local/domain/{}", self.domid)
    }

    /// An absolute path for `p` (relative paths are under the home), without a trailing `/`.
    fn path(&self, p: &str) -> Option<String> {
        let p = p.trim_end_matches('\0');
        if p.is_empty() {
            return None;
        }
        let full = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{}/{p}", self.home())
        };
        Some(full.trim_end_matches('/').to_string())
    }

    /// Whether the domain may touch `path`: its own subtree only.
    fn allowed(&self, path: &str) -> bool {
        let home = self.home();
        path == home || path.starts_with(&format!("{home}/"))
    }

    /// Whether `path` exists (as a node or as the parent of one).
    fn exists(&self, path: &str) -> bool {
        self.nodes.contains_key(path) || self.children(path).next().is_some()
    }

    /// The names of `path`'s children.
    fn children<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("{path}/");
        let mut last: Option<&'a str> = None;
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter_map(move |(k, _)| {
                let rest = &k[path.len() + 1..];
                let name = rest.split('/').next()?;
                if last == Some(name) {
                    return None;
                }
                last = Some(name);
                Some(name)
            })
    }

    /// Handles one request; returns the reply and any watch events it triggers.
    pub fn handle(&mut self, req: &Message) -> Vec<Message> {
        let reply = |kind: u32, payload: Vec<u8>| Message {
            kind,
            req_id: req.req_id,
            tx_id: req.tx_id,
            payload,
        };
        let err = |e: &str| {
            let mut p = e.as_bytes().to_vec();
            p.push(0);
            reply(msg::ERROR, p)
        };
        let ok = || reply(req.kind, b"OK\0".to_vec());
        let args: Vec<&str> = core::str::from_utf8(&req.payload)
            .unwrap_or("")
            .split('\0')
            .collect();
        let arg0 = args.first().copied().unwrap_or("");
        let mut out = Vec::new();
        let first = match req.kind {
            msg::READ | msg::DIRECTORY | msg::GET_PERMS => match self.path(arg0) {
                None => err("EINVAL"),
                Some(p) if !self.exists(&p) => err("ENOENT"),
                Some(p) if req.kind == msg::READ => reply(
                    msg::READ,
                    self.nodes.get(&p).cloned().unwrap_or_default().into_bytes(),
                ),
                Some(p) if req.kind == msg::DIRECTORY => {
                    let mut v = Vec::new();
                    for c in self.children(&p) {
                        v.extend_from_slice(c.as_bytes());
                        v.push(0);
                    }
                    reply(msg::DIRECTORY, v)
                }
                Some(_) => reply(msg::GET_PERMS, format!("n{}\0", self.domid).into_bytes()),
            },
            msg::WRITE | msg::MKDIR => {
                // XS_WRITE: "path\0value" (the value is the rest, not NUL-terminated).
                let Some(p) = self.path(arg0) else {
                    return vec![err("EINVAL")];
                };
                if !self.allowed(&p) {
                    return vec![err("EACCES")];
                }
                let value = if req.kind == msg::WRITE {
                    let at = arg0.len() + 1;
                    String::from_utf8_lossy(req.payload.get(at..).unwrap_or(&[])).into_owned()
                } else {
                    self.nodes.get(&p).cloned().unwrap_or_default()
                };
                self.nodes.insert(p.clone(), value);
                out.extend(self.fire(&p));
                ok()
            }
            msg::RM => match self.path(arg0) {
                None => err("EINVAL"),
                Some(p) if !self.allowed(&p) => err("EACCES"),
                Some(p) if !self.exists(&p) => err("ENOENT"),
                Some(p) => {
                    let prefix = format!("{p}/");
                    self.nodes.retain(|k, _| *k != p && !k.starts_with(&prefix));
                    out.extend(self.fire(&p));
                    ok()
                }
            },
            msg::SET_PERMS => match self.path(arg0) {
                Some(p) if self.allowed(&p) && self.exists(&p) => ok(),
                Some(p) if !self.allowed(&p) => err("EACCES"),
                _ => err("ENOENT"),
            },
            msg::WATCH => {
                let (Some(p), Some(token)) = (self.path(arg0), args.get(1)) else {
                    return vec![err("EINVAL")];
                };
                let token = token.to_string();
                self.watches.push((p.clone(), token.clone()));
                // xenstored fires a new watch once at once.
                out.push(self.event(&p, &token));
                ok()
            }
            msg::UNWATCH => {
                let (Some(p), Some(token)) = (self.path(arg0), args.get(1)) else {
                    return vec![err("EINVAL")];
                };
                let before = self.watches.len();
                self.watches.retain(|(wp, wt)| !(*wp == p && wt == token));
                if self.watches.len() == before {
                    err("ENOENT")
                } else {
                    ok()
                }
            }
            msg::RESET_WATCHES => {
                self.watches.clear();
                ok()
            }
            msg::TRANSACTION_START => {
                let id = self.next_tx;
                self.next_tx = self.next_tx.wrapping_add(1).max(1);
                reply(msg::TRANSACTION_START, format!("{id}\0").into_bytes())
            }
            msg::TRANSACTION_END => ok(),
            msg::GET_DOMAIN_PATH => {
                let id: u16 = arg0.parse().unwrap_or(self.domid);
                reply(
                    msg::GET_DOMAIN_PATH,
                    format!("/local/domain/{id}\0").into_bytes(),
                )
            }
            _ => err("ENOSYS"),
        };
        let mut all = Vec::with_capacity(1 + out.len());
        all.push(first);
        all.extend(out);
        all
    }

    /// The events of the watches on `path` or one of its parents.
    fn fire(&self, path: &str) -> Vec<Message> {
        self.watches
            .iter()
            .filter(|(wp, _)| path == wp || path.starts_with(&format!("{wp}/")))
            .map(|(_, token)| self.event(path, token))
            .collect()
    }

    fn event(&self, path: &str, token: &str) -> Message {
        Message {
            kind: msg::WATCH_EVENT,
            req_id: 0,
            tx_id: 0,
            payload: format!("{path}\0{token}\0").into_bytes(),
        }
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: u32, payload: &[u8]) -> Message {
        Message {
            kind,
            req_id: 7,
            tx_id: 0,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn reads_directories_and_errors() {
        let mut s = Store::for_domain(3, "web", 131072, 2);
        let r = s.handle(&req(msg::READ, b"name\0"));
        assert_eq!((r[0].kind, r[0].req_id), (msg::READ, 7));
        assert_eq!(r[0].payload, b"web");
        let r = s.handle(&req(msg::READ, b"/local/domain/3/memory/target\0"));
        assert_eq!(r[0].payload, b"131072");
        let r = s.handle(&req(msg::DIRECTORY, b"cpu\0"));
        assert_eq!(r[0].payload, b"0\x001\x00");
        let r = s.handle(&req(msg::DIRECTORY, b"device\0"));
        assert_eq!((r[0].kind, r[0].payload.len()), (msg::DIRECTORY, 0));
        let r = s.handle(&req(msg::READ, b"device/vbd\0"));
        assert_eq!(
            (r[0].kind, r[0].payload.as_slice()),
            (msg::ERROR, &b"ENOENT\0"[..])
        );
        let r = s.handle(&req(msg::WRITE, b"/local/domain/0/x\0v"));
        assert_eq!(r[0].payload, b"EACCES\0", "another domain's subtree");
        let r = s.handle(&req(99, b""));
        assert_eq!(r[0].payload, b"ENOSYS\0");
    }

    #[test]
    fn watches_fire_at_once_and_on_change() {
        let mut s = Store::for_domain(1, "d", 1024, 1);
        let r = s.handle(&req(msg::WATCH, b"control/shutdown\0tok\0"));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].payload, b"OK\0");
        assert_eq!(r[1].kind, msg::WATCH_EVENT);
        assert_eq!(r[1].payload, b"/local/domain/1/control/shutdown\0tok\0");
        let r = s.handle(&req(msg::WRITE, b"control/shutdown\0poweroff"));
        assert_eq!(r.len(), 2, "the write fires the watch");
        assert_eq!(
            s.handle(&req(msg::READ, b"control/shutdown\0"))[0].payload,
            b"poweroff"
        );
        assert_eq!(s.handle(&req(msg::RM, b"control/shutdown\0")).len(), 2);
        let r = s.handle(&req(msg::UNWATCH, b"control/shutdown\0tok\0"));
        assert_eq!(r[0].payload, b"OK\0");
        let r = s.handle(&req(msg::UNWATCH, b"control/shutdown\0tok\0"));
        assert_eq!(r[0].payload, b"ENOENT\0");
    }

    #[test]
    fn transactions_and_wire_format() {
        let mut s = Store::for_domain(2, "d", 1024, 1);
        let r = s.handle(&req(msg::TRANSACTION_START, b"\0"));
        assert_eq!(r[0].payload, b"1\0");
        assert_eq!(
            s.handle(&req(msg::TRANSACTION_END, b"T\0"))[0].payload,
            b"OK\0"
        );
        let m = req(msg::READ, b"name\0");
        let b = m.to_bytes();
        assert_eq!(Message::header(&b), Some((msg::READ, 7, 0, 5)));
        assert_eq!(Message::header(&b[..10]), None);
    }
}
