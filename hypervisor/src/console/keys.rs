//! Debug keys on the hypervisor console (Xen's `keyhandler.c`): with the input focus on the
//! hypervisor, a key prints a dump.

use crate::domain::{Domain, registry};
use crate::printk;
use core::sync::atomic::Ordering;

/// A debug key and what it does.
struct Key {
    key: u8,
    what: &'static str,
    run: fn(),
}

const KEYS: &[Key] = &[
    Key {
        key: b'd',
        what: "dump registers",
        run: dump_registers,
    },
    Key {
        key: b'e',
        what: "dump evtchn info",
        run: dump_evtchn,
    },
    Key {
        key: b'g',
        what: "print grant table usage",
        run: crate::domain::grants::dump_all,
    },
    Key {
        key: b'h',
        what: "show this message",
        run: show_handlers,
    },
    Key {
        key: b'q',
        what: "dump domain (and guest debug) info",
        run: dump_domains,
    },
    Key {
        key: b'r',
        what: "dump run queues",
        run: dump_runq,
    },
];

/// Runs the handler of `key`, as Xen does for keys typed while the hypervisor has the input.
pub fn handle(key: u8) {
    match KEYS.iter().find(|k| k.key == key) {
        Some(k) => {
            printk!("'{}' pressed -> {}\n", char::from(key), k.what);
            (k.run)();
        }
        None => printk!(
            "'{}' pressed -> unknown key\n",
            char::from(key).escape_default()
        ),
    }
}

fn show_handlers() {
    for k in KEYS {
        printk!(
            " key '{}' (ascii '{:02x}') => {}\n",
            char::from(k.key),
            k.key,
            k.what
        );
    }
}

fn dump_domains() {
    printk!("now = {} ns\n", crate::pv::time::now());
    for d in registry::all() {
        printk!("General information for domain {}:\n", d.id);
        printk!(
            "    name={} state={} privileged={} nr_pages={} max_pages={} dying={}\n",
            d.name,
            d.inner.lock().state,
            d.privileged,
            if d.relinquished.load(Ordering::Acquire) {
                0
            } else {
                d.tot_pages
            },
            d.max_pages,
            u8::from(d.stopped.load(Ordering::Acquire))
        );
        printk!("VCPU information and callbacks for domain {}:\n", d.id);
        for v in d.vcpus.iter() {
            let (pending, mask) = if v.pv.vcpu_info == 0 || d.relinquished.load(Ordering::Acquire) {
                (0, 1)
            } else {
                // SAFETY: a live domain's vcpu_info is a direct-mapped page it owns; the two
                // flag bytes are read racily, as Xen's dump does.
                unsafe {
                    (
                        (v.pv.vcpu_info as *const u8).read_volatile(),
                        ((v.pv.vcpu_info + 1) as *const u8).read_volatile(),
                    )
                }
            };
            printk!(
                "    VCPU{}: CPU{} [has={}] up={} blocked={} poll={} upcall_pend={:02x} upcall_mask={:02x}\n",
                v.id,
                v.processor,
                if v.running.load(Ordering::Acquire) {
                    'T'
                } else {
                    'F'
                },
                u8::from(v.is_up()),
                u8::from(v.blocked.load(Ordering::Relaxed)),
                u8::from(v.polling.load(Ordering::Relaxed)),
                pending,
                mask
            );
        }
    }
    crate::domain::list::print();
}

fn dump_evtchn() {
    for d in registry::all() {
        dump_domain_evtchn(d);
    }
}

fn dump_domain_evtchn(d: &Domain) {
    printk!("Event channel information for domain {}:\n", d.id);
    if d.relinquished.load(Ordering::Acquire) {
        printk!("    (dead)\n");
        return;
    }
    let t = d.evtchn.lock();
    let mut port = 1;
    while t.valid(port) {
        if let Ok((state, vcpu, word)) = t.status(port)
            && state != crate::evtchn::stat::CLOSED
        {
            let p = t.is_pending(d, port);
            let what = match state {
                crate::evtchn::stat::UNBOUND => alloc::format!("unbound remote=d{word}"),
                crate::evtchn::stat::INTERDOMAIN => alloc::format!(
                    "interdomain d{word} port {}",
                    t.interdomain_peer(port).unwrap_or(0)
                ),
                crate::evtchn::stat::VIRQ => alloc::format!("virq {word}"),
                crate::evtchn::stat::IPI => alloc::string::String::from("ipi"),
                _ => alloc::format!("state {state}"),
            };
            printk!("    {port:4} [{}]: v={vcpu} {what}\n", u8::from(p));
        }
        port += 1;
    }
}

fn dump_runq() {
    for cpu in crate::smpboot::online_cpus() {
        let queue = crate::sched::queued_on(cpu);
        if queue.is_empty() {
            printk!("CPU[{cpu:02}] idle\n");
        }
        for v in queue {
            printk!(
                "CPU[{cpu:02}] d{}v{} {}\n",
                v.domain().id,
                v.id,
                if v.domain().stopped.load(Ordering::Acquire) {
                    "stopped"
                } else if v.running.load(Ordering::Acquire) {
                    if v.blocked.load(Ordering::Relaxed) {
                        "blocked"
                    } else {
                        "running"
                    }
                } else if v.is_up() {
                    "runnable"
                } else {
                    "offline"
                }
            );
        }
    }
}

fn dump_registers() {
    crate::sched::request_register_dump();
}
