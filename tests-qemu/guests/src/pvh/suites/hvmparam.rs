//! `hvmparam`: `HVMOP_get_param`/`HVMOP_set_param` on `HVM_PARAM_CALLBACK_IRQ`.

use crate::events::{CALLBACK_VIA_VECTOR, get_param, set_callback_vector};
use crate::suites::Env;
use crate::verdict::{Hex, Rc, Suite};
use xen_abi::errno::Errno;
use xen_abi::hvm::{HVM_NR_PARAMS, HVM_PARAM_CALLBACK_IRQ};

pub fn run(s: &mut Suite, _env: &Env) {
    let (rc, value) = get_param(HVM_PARAM_CALLBACK_IRQ);
    s.check(
        "callback_irq.initial",
        rc == 0 && value == 0,
        format_args!("rc={} value={}", Rc(rc), Hex(value)),
    );
    let rc = set_callback_vector();
    s.expect_rc("callback_irq.set_vector", rc, 0);
    let (rc, value) = get_param(HVM_PARAM_CALLBACK_IRQ);
    s.check(
        "callback_irq.read_back",
        rc == 0 && value == CALLBACK_VIA_VECTOR,
        format_args!("rc={} value={}", Rc(rc), Hex(value)),
    );
    let (rc, _) = get_param(HVM_NR_PARAMS);
    s.expect_rc("get_param.out_of_range", rc, Rc::err(Errno::EINVAL));
}
