//! A domain's port table (Xen's `struct evtchn` buckets with `event_lock`): port states, VIRQ
//! bindings, the domain's event ABI, and the operations that need only this one domain.
//!
//! Operations that connect or disconnect two domains are in [`super::interdomain`].

use super::abi::{Abi, EventAbi, FifoPortState, Notify};
use super::fifo::{CONTROL_BLOCK_SIZE, Fifo};
use super::guest::{EventMemory, GuestMem, NoMemory};
use super::interdomain::{self, Pair, Side};
use super::two_level::{self, TwoLevel};
use super::{PORTS_PER_BUCKET, Port, PortState, PortStatus, StatusDetail, stat, virq_is_global};
use alloc::boxed::Box;
use alloc::vec::Vec;
use xen_abi::DomId;
use xen_abi::errno::Errno;
use xen_abi::event_channel::{EVTCHN_FIFO_LINK_BITS, EvtchnStatus};
use xen_abi::xen::{DOMID_SELF, NR_VIRQS};

const PAGE_SIZE: u32 = 4096;

/// A domain's ports, each vCPU's VIRQ bindings (`virq_to_evtchn`) and its event ABI.
pub struct PortTable {
    ports: Vec<Port>,
    virqs: Vec<[u32; NR_VIRQS as usize]>,
    abi: Abi,
    /// Ports neither free nor reserved (`active_evtchns`).
    active: u32,
    /// Where an interrupted `EVTCHNOP_reset` resumes; 0 when none is in progress
    /// (`next_evtchn`).
    next_reset: u32,
    /// No port below this one is free: where the search for a free port starts (Xen scans
    /// from 0; the result is the same, the cost is not).
    free_hint: u32,
}

impl Default for PortTable {
    fn default() -> Self {
        Self::new(1)
    }
}

impl PortTable {
    /// A table for `nr_vcpus` vCPUs with the first bucket valid, port 0 reserved and the
    /// 2-level ABI (`evtchn_init`).
    pub fn new(nr_vcpus: u32) -> Self {
        let mut ports = alloc::vec![Port::FREE; PORTS_PER_BUCKET as usize];
        ports[0].state = PortState::Reserved;
        let virqs = alloc::vec![[0; NR_VIRQS as usize]; nr_vcpus as usize];
        Self {
            ports,
            virqs,
            abi: Abi::TwoLevel(TwoLevel),
            active: 0,
            next_reset: 0,
            free_hint: 1,
        }
    }

    /// Number of vCPUs the table was made for.
    pub fn nr_vcpus(&self) -> u32 {
        self.virqs.len() as u32
    }

    fn vcpu_exists(&self, vcpu: u32) -> bool {
        vcpu < self.nr_vcpus()
    }

    /// The domain's event ABI.
    pub fn abi(&self) -> &Abi {
        &self.abi
    }

    /// Whether the domain switched to the FIFO ABI.
    pub fn is_fifo(&self) -> bool {
        self.abi.fifo().is_some()
    }

    /// Xen's `port_is_valid`: the port's bucket exists.
    pub fn valid(&self, port: u32) -> bool {
        (port as usize) < self.ports.len()
    }

    /// Number of valid ports (`valid_evtchns`): ports below it exist, free or not.
    pub fn valid_ports(&self) -> u32 {
        self.ports.len() as u32
    }

    /// The port, if valid.
    pub fn get(&self, port: u32) -> Option<&Port> {
        self.ports.get(port as usize)
    }

    /// The vCPU a valid port notifies (`notify_vcpu_id`).
    pub fn notify_vcpu(&self, port: u32) -> Option<u32> {
        self.get(port).map(|p| p.notify_vcpu)
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, vcpu: u32, virq: u32) -> Option<u32> {
        let p = *self.virqs.get(vcpu as usize)?.get(virq as usize)?;
        (p != 0).then_some(p)
    }

    /// Whether any port is in use (`has_active_evtchns`).
    pub fn has_active(&self) -> bool {
        self.active > 0
    }

    // --- Allocation ------------------------------------------------------------------------

    /// The lowest free port that the ABI lets us reuse, adding a bucket when every valid port
    /// is taken (`get_free_port`). The port stays free until [`PortTable::install`].
    pub(crate) fn find_free(&mut self) -> Result<u32, Errno> {
        let limit = self.abi.max_ports();
        let searched = limit.min(self.ports.len() as u32);
        while self.free_hint < searched
            && self.ports[self.free_hint as usize].state != PortState::Free
        {
            self.free_hint += 1;
        }
        // A free port may still be busy (linked on a FIFO queue until the guest consumes it).
        let found = (self.free_hint..searched)
            .find(|&i| self.ports[i as usize].state == PortState::Free && !self.abi.is_busy(i));
        if let Some(p) = found {
            return Ok(p);
        }
        let n = self.ports.len() as u32;
        if n >= limit {
            return Err(Errno::ENOSPC);
        }
        self.ports.extend((0..PORTS_PER_BUCKET).map(|_| Port::FREE));
        Ok(n)
    }

    /// Binds free `port` in `state`, notifying `notify_vcpu` (`evtchn_port_init` included).
    pub(crate) fn install(&mut self, port: u32, state: PortState, notify_vcpu: u32) {
        let p = &mut self.ports[port as usize];
        debug_assert!(p.state == PortState::Free && state.usable());
        p.state = state;
        p.notify_vcpu = notify_vcpu;
        self.abi.init_port(port, &mut p.fifo);
        self.active += 1;
    }

    /// Changes the state of a port in use without re-initialising it (the peer's side of a
    /// connection: its vCPU binding and ABI state carry over, as in Xen).
    pub(crate) fn set_state(&mut self, port: u32, state: PortState) {
        self.ports[port as usize].state = state;
    }

    /// Allocates the lowest free port in `state` (`get_free_port` + binding), notifying vCPU 0.
    pub fn alloc(&mut self, state: PortState) -> Result<u32, Errno> {
        let port = self.find_free()?;
        self.install(port, state, 0);
        Ok(port)
    }

    /// Frees a port in use (`evtchn_free`): clears its pending state, resets its vCPU to 0.
    pub(crate) fn free(&mut self, mem: &dyn EventMemory, port: u32) {
        self.abi.clear_pending(mem, port);
        let p = &mut self.ports[port as usize];
        p.state = PortState::Free;
        p.notify_vcpu = 0;
        // Xen keeps a deferred FIFO event across close and replays it on whatever the port is
        // bound to next when its page arrives; dropping it is what `evtchn_free`'s comment
        // ("avoid unexpected behavior on re-bind") intends.
        p.fifo.deferred = false;
        self.active -= 1;
        self.free_hint = self.free_hint.min(port);
    }

    // --- Binding ---------------------------------------------------------------------------

    /// `EVTCHNOP_alloc_unbound` in this table (the caller resolved `dom` and checked that
    /// `caller` may allocate here): a new port that `remote_dom` (`DOMID_SELF`: `caller`) may
    /// bind to.
    pub fn alloc_unbound(&mut self, caller: DomId, remote_dom: DomId) -> Result<u32, Errno> {
        let remote = if remote_dom == DOMID_SELF {
            caller
        } else {
            remote_dom
        };
        self.alloc(PortState::Unbound { remote })
    }

    /// `EVTCHNOP_bind_virq`.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, Errno> {
        if virq >= NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
            return Err(Errno::EINVAL);
        }
        if !self.vcpu_exists(vcpu) {
            return Err(Errno::ENOENT);
        }
        if self.virqs[vcpu as usize][virq as usize] != 0 {
            return Err(Errno::EEXIST);
        }
        let port = self.find_free()?;
        self.install(port, PortState::Virq { virq }, vcpu);
        self.virqs[vcpu as usize][virq as usize] = port;
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<u32, Errno> {
        if !self.vcpu_exists(vcpu) {
            return Err(Errno::ENOENT);
        }
        let port = self.find_free()?;
        self.install(port, PortState::Ipi, vcpu);
        Ok(port)
    }

    /// `EVTCHNOP_bind_vcpu`: sends `port`'s future events to `vcpu`. Allowed for unbound,
    /// interdomain and PIRQ ports and for global VIRQs; -EINVAL for per-vCPU VIRQs, IPIs and
    /// closed ports; -ENOENT (checked first) for a vCPU that does not exist.
    pub fn bind_vcpu(&mut self, port: u32, vcpu: u32) -> Result<(), Errno> {
        if !self.vcpu_exists(vcpu) {
            return Err(Errno::ENOENT);
        }
        let p = self.ports.get_mut(port as usize).ok_or(Errno::EINVAL)?;
        match p.state {
            PortState::Virq { virq } if virq_is_global(virq) => {}
            PortState::Unbound { .. } | PortState::Interdomain { .. } | PortState::Pirq { .. } => {}
            _ => return Err(Errno::EINVAL),
        }
        // A global VIRQ stays in vCPU 0's binding table; only the notified vCPU changes.
        // (Xen also re-links a PIRQ port on the new vCPU's list and moves the IRQ's affinity:
        // PIRQs are the physdev layer's.)
        p.notify_vcpu = vcpu;
        Ok(())
    }

    /// `EVTCHNOP_bind_interdomain` with both ends in this domain (`self_id`), without Xen's
    /// conservative notification of the new port. Prefer [`interdomain::bind_interdomain`].
    pub fn bind_loopback(&mut self, self_id: u16, remote_port: u32) -> Result<u32, Errno> {
        let mut pair = Pair::Same(Side {
            id: self_id,
            table: self,
            mem: &NoMemory,
        });
        interdomain::connect(&mut pair, remote_port)
    }

    // --- Closing ---------------------------------------------------------------------------

    /// Removes `port`'s VIRQ binding (`virq_to_evtchn`), which is vCPU 0's for a global VIRQ.
    pub(crate) fn unbind_virq(&mut self, port: u32, virq: u32) {
        let vcpu = if virq_is_global(virq) {
            0
        } else {
            self.ports[port as usize].notify_vcpu
        };
        if let Some(slot) = self
            .virqs
            .get_mut(vcpu as usize)
            .and_then(|v| v.get_mut(virq as usize))
            && *slot == port
        {
            *slot = 0;
        }
    }

    /// `EVTCHNOP_close` without the peer's table and without guest memory: an interdomain
    /// peer in another domain is left alone, and under 2-level the caller clears the pending
    /// bit. Prefer [`interdomain::close`].
    pub fn close(&mut self, self_id: u16, port: u32) -> Result<(), Errno> {
        self.close_detached(&NoMemory, self_id, port)
    }

    /// Closes `port` on this side only (an interdomain peer in another domain is not touched:
    /// it is gone, or the caller will see to it).
    pub(crate) fn close_detached(
        &mut self,
        mem: &dyn EventMemory,
        self_id: DomId,
        port: u32,
    ) -> Result<(), Errno> {
        match self.get(port).map(|p| p.state) {
            Some(PortState::Interdomain { dom, .. }) if dom != self_id => {
                self.free(mem, port);
                Ok(())
            }
            _ => {
                let mut pair = Pair::Same(Side {
                    id: self_id,
                    table: self,
                    mem,
                });
                interdomain::close(&mut pair, port).map_err(|e| e.errno())
            }
        }
    }

    // --- Delivery --------------------------------------------------------------------------

    /// Raises `port` on `vcpu` if the port is in use (`evtchn_port_set_pending`).
    pub fn raise(&mut self, mem: &dyn EventMemory, port: u32, vcpu: u32) -> Notify {
        match self.ports.get_mut(port as usize) {
            Some(p) if p.state.usable() && vcpu < self.virqs.len() as u32 => {
                self.abi.set_pending(mem, port, &mut p.fifo, vcpu)
            }
            _ => Notify::NONE,
        }
    }

    /// Raises `virq` (Xen's `send_guest_vcpu_virq` / `send_guest_global_virq`): a per-vCPU VIRQ
    /// on `vcpu`'s binding; a global VIRQ (`vcpu` ignored) on vCPU 0's binding, delivered to
    /// the vCPU the port notifies.
    pub fn send_virq(&mut self, mem: &dyn EventMemory, vcpu: u32, virq: u32) -> Notify {
        let (bound_on, global) = if virq_is_global(virq) {
            (0, true)
        } else {
            (vcpu, false)
        };
        let Some(port) = self.virq_port(bound_on, virq) else {
            return Notify::NONE;
        };
        let target = if global {
            self.ports[port as usize].notify_vcpu
        } else {
            vcpu
        };
        self.raise(mem, port, target)
    }

    /// `EVTCHNOP_unmask` (`evtchn_unmask`): -EINVAL for an invalid port; a closed port is
    /// accepted and left alone.
    pub fn unmask(&mut self, mem: &dyn EventMemory, port: u32) -> Result<Notify, Errno> {
        let p = self.ports.get_mut(port as usize).ok_or(Errno::EINVAL)?;
        if !p.state.usable() {
            return Ok(Notify::NONE);
        }
        let vcpu = p.notify_vcpu;
        Ok(self.abi.unmask(mem, port, &mut p.fifo, vcpu))
    }

    /// Whether `port` is pending (`evtchn_port_is_pending`, for `SCHEDOP_poll`).
    pub fn is_pending(&self, mem: &dyn EventMemory, port: u32) -> bool {
        self.get(port)
            .is_some_and(|p| p.state.usable() && self.abi.is_pending(mem, port))
    }

    /// Whether `port` is masked (`evtchn_is_masked`; a port not in use counts as masked).
    pub fn is_masked(&self, mem: &dyn EventMemory, port: u32) -> bool {
        self.get(port)
            .is_none_or(|p| !p.state.usable() || self.abi.is_masked(mem, port))
    }

    /// `EVTCHNOP_set_priority`: -EINVAL for an invalid port, then -ENOSYS under 2-level,
    /// -EACCES for a port not in use, -EINVAL for a priority above 15.
    pub fn set_priority(&mut self, port: u32, priority: u32) -> Result<(), Errno> {
        let p = self.ports.get_mut(port as usize).ok_or(Errno::EINVAL)?;
        if !matches!(self.abi, Abi::Fifo(_)) {
            return Err(Errno::ENOSYS);
        }
        if !p.state.usable() {
            return Err(Errno::EACCES);
        }
        self.abi.set_priority(&mut p.fifo, priority)
    }

    /// The FIFO priority of a valid port.
    pub fn priority(&self, port: u32) -> Option<u8> {
        self.get(port).map(|p| p.fifo.priority)
    }

    // --- Status ----------------------------------------------------------------------------

    /// `EVTCHNOP_status` for a port of this table.
    pub fn port_status(&self, port: u32) -> Result<PortStatus, Errno> {
        let p = self.get(port).ok_or(Errno::EINVAL)?;
        let (status, detail) = match p.state {
            PortState::Free | PortState::Reserved => (stat::CLOSED, StatusDetail::None),
            PortState::Unbound { remote } => (stat::UNBOUND, StatusDetail::Unbound { dom: remote }),
            PortState::Interdomain { dom, port } => {
                (stat::INTERDOMAIN, StatusDetail::Interdomain { dom, port })
            }
            PortState::Pirq { pirq } => (stat::PIRQ, StatusDetail::Pirq(pirq)),
            PortState::Virq { virq } => (stat::VIRQ, StatusDetail::Virq(virq)),
            PortState::Ipi => (stat::IPI, StatusDetail::None),
        };
        Ok(PortStatus {
            status,
            vcpu: p.notify_vcpu,
            detail,
        })
    }

    /// Fills the OUT fields of `out` for `out.port` as Xen does: `status`, `vcpu` and the one
    /// union member the state has; the rest of the union keeps what the guest passed in.
    pub fn fill_status(&self, out: &mut EvtchnStatus) -> Result<(), Errno> {
        let s = self.port_status(out.port)?;
        out.status = s.status;
        out.vcpu = s.vcpu;
        match s.detail {
            StatusDetail::None => {}
            StatusDetail::Unbound { dom } => out.set_unbound(dom),
            StatusDetail::Interdomain { dom, port } => {
                // `u.interdomain.dom` shares `u.unbound.dom`'s offset; `_pad` is not written.
                out.set_unbound(dom);
                out.u[1] = port;
            }
            StatusDetail::Pirq(v) | StatusDetail::Virq(v) => out.u[0] = v,
        }
        Ok(())
    }

    /// `EVTCHNOP_status`: (status, vcpu, first union word). See [`PortTable::port_status`].
    pub fn status(&self, port: u32) -> Result<(u32, u32, u32), Errno> {
        let s = self.port_status(port)?;
        let word = match s.detail {
            StatusDetail::None => 0,
            StatusDetail::Unbound { dom } | StatusDetail::Interdomain { dom, .. } => u32::from(dom),
            StatusDetail::Pirq(v) | StatusDetail::Virq(v) => v,
        };
        Ok((s.status, s.vcpu, word))
    }

    /// The remote port of an interdomain port (the second word of `evtchn_status.u`).
    pub fn interdomain_peer(&self, port: u32) -> Option<u32> {
        match self.get(port)?.state {
            PortState::Interdomain { port, .. } => Some(port),
            _ => None,
        }
    }

    /// The port an event sent on `port` is delivered to in this domain, with the vCPU to
    /// notify: IPIs and loopback connections. `Ok(None)` for an unbound port (dropped).
    /// Prefer [`interdomain::send`], which also reaches other domains and raises the event.
    pub fn send_target(&self, self_id: u16, port: u32) -> Result<Option<(u32, u32)>, Errno> {
        let p = self.get(port).ok_or(Errno::EINVAL)?;
        match p.state {
            PortState::Ipi => Ok(Some((port, p.notify_vcpu))),
            PortState::Interdomain { dom, port: rport } if dom == self_id => {
                Ok(Some((rport, self.ports[rport as usize].notify_vcpu)))
            }
            PortState::Unbound { .. } => Ok(None),
            _ => Err(Errno::EINVAL),
        }
    }

    // --- FIFO setup --------------------------------------------------------------------------

    /// `EVTCHNOP_init_control` for `vcpu` of this domain: maps its FIFO control block at
    /// `offset` in the page `map` returns, and on the domain's first call switches it to FIFO.
    /// Returns `link_bits` for the guest.
    ///
    /// Checks in Xen's order: -ENOENT for a vCPU that does not exist; -EINVAL for an offset
    /// past `4096 - 72` or not 8-byte aligned; -EINVAL if the vCPU already has a control
    /// block. Only then is `map` called (with Xen's -EINVAL for a GFN that is not a writable
    /// page of the domain); if it fails on the first call the domain stays 2-level.
    ///
    /// Switching carries the 2-level state over as Xen's `setup_ports` does: every valid port
    /// gets the default priority, and a port pending in `shared_info` is remembered and raised
    /// once its event-array page is added.
    pub fn init_control(
        &mut self,
        mem: &dyn EventMemory,
        vcpu: u32,
        offset: u32,
        map: impl FnOnce() -> Result<GuestMem, Errno>,
    ) -> Result<u8, Errno> {
        if !self.vcpu_exists(vcpu) {
            return Err(Errno::ENOENT);
        }
        if offset > PAGE_SIZE - CONTROL_BLOCK_SIZE as u32 || !offset.is_multiple_of(8) {
            return Err(Errno::EINVAL);
        }
        if self.abi.fifo().is_some_and(|f| f.has_control_block(vcpu)) {
            return Err(Errno::EINVAL);
        }
        let page = map()?;
        if let Some(fifo) = self.abi.fifo_mut() {
            fifo.install_control_block(vcpu, page, offset)?;
        } else {
            // Latch the 2-level port limit before the switch raises it.
            let prev_ports = self.abi.max_ports();
            let mut fifo = Fifo::new(self.nr_vcpus());
            fifo.install_control_block(vcpu, page, offset)?;
            self.abi = Abi::Fifo(Box::new(fifo));
            self.carry_over_2l(mem, prev_ports);
        }
        Ok(EVTCHN_FIFO_LINK_BITS as u8)
    }

    /// Xen's `setup_ports`, run when switching to FIFO.
    fn carry_over_2l(&mut self, mem: &dyn EventMemory, prev_ports: u32) {
        let n = prev_ports.min(self.ports.len() as u32);
        for port in 1..n {
            let pending = two_level::pending_in_shared_info(mem, port);
            let p = &mut self.ports[port as usize];
            if pending {
                p.fifo.deferred = true;
            }
            p.fifo.priority = FifoPortState::INITIAL.priority;
        }
    }

    /// `EVTCHNOP_expand_array`: adds the event-array page `map` returns. -EOPNOTSUPP under
    /// 2-level, -ENOSPC once all 128 pages are there (checked before `map` is called); then
    /// raises the ports of the new page that were raised while it was missing.
    pub fn expand_array(
        &mut self,
        mem: &dyn EventMemory,
        map: impl FnOnce() -> Result<GuestMem, Errno>,
    ) -> Result<Vec<Notify>, Errno> {
        let fifo = self.abi.fifo_mut().ok_or(Errno::EOPNOTSUPP)?;
        if fifo.array_full() {
            return Err(Errno::ENOSPC);
        }
        let range = fifo.add_array_page(map()?)?;
        let mut notes = Vec::new();
        for port in range {
            let Some(p) = self.ports.get_mut(port as usize) else {
                break;
            };
            if p.fifo.deferred {
                // Replayed once; Xen keeps the flag, which could only ever replay it again
                // after a reset and a second switch to FIFO.
                p.fifo.deferred = false;
                let vcpu = p.notify_vcpu;
                notes.push(self.abi.set_pending(mem, port, &mut p.fifo, vcpu));
            }
        }
        Ok(notes)
    }

    // --- Reset -------------------------------------------------------------------------------

    /// Starts (`resuming == false`) or resumes an `EVTCHNOP_reset`; returns the first port to
    /// close. -EBUSY if one is already in progress and this is not its continuation, or if
    /// there is nothing to resume.
    pub fn reset_start(&mut self, resuming: bool) -> Result<u32, Errno> {
        let first = if resuming {
            self.next_reset
        } else {
            u32::from(self.next_reset == 0)
        };
        if first > self.next_reset {
            self.next_reset = first;
        }
        if first == 0 {
            return Err(Errno::EBUSY);
        }
        Ok(first)
    }

    /// Records where a preempted reset resumes (the caller returns -ERESTART with an
    /// `EVTCHNOP_reset_cont` continuation).
    pub fn reset_suspend(&mut self, next_port: u32) {
        self.next_reset = next_port;
    }

    /// Ends a reset whose loop closed every port: -EAGAIN if ports were bound meanwhile, else
    /// a FIFO domain goes back to 2-level and the FIFO pages are handed back for release.
    pub fn reset_finish(&mut self) -> Result<Vec<GuestMem>, Errno> {
        self.next_reset = 0;
        if self.has_active() {
            return Err(Errno::EAGAIN);
        }
        Ok(self.back_to_two_level())
    }

    /// Drops the FIFO state, if any (`evtchn_fifo_destroy` + `evtchn_2l_init`); returns its
    /// pages for the owner to release.
    pub fn back_to_two_level(&mut self) -> Vec<GuestMem> {
        match core::mem::replace(&mut self.abi, Abi::TwoLevel(TwoLevel)) {
            Abi::Fifo(f) => f.into_pages(),
            Abi::TwoLevel(_) => Vec::new(),
        }
    }

    /// Runs `f` on the FIFO state and `port`'s FIFO bookkeeping (tests that step inside the
    /// link protocol).
    #[cfg(test)]
    pub(crate) fn with_fifo_port<R>(
        &mut self,
        port: u32,
        f: impl FnOnce(&mut Fifo, &mut FifoPortState) -> R,
    ) -> Option<R> {
        let fifo = self.abi.fifo_mut()?;
        let p = self.ports.get_mut(port as usize)?;
        Some(f(fifo, &mut p.fifo))
    }
}

#[cfg(test)]
mod tests;
