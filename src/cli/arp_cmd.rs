//! `flashline arp-check`: the RFC 5227 address-conflict check on its own
//! (exit 0 when the address is free, 1 when a host answers for it).

use std::net::Ipv4Addr;

use clap::Args;

use super::progress_view::TaskView;
use super::{CommandResult, Context, Outcome};
use crate::net::arp::{self, ProbeOptions};
use crate::profile::HumanDuration;

#[derive(Debug, Args)]
pub struct ArpCheckArgs {
    /// The IPv4 address to check before giving it to a unit.
    address: Ipv4Addr,
    /// The interface to probe from; default: the one that routes to the address.
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// Probes sent (RFC 5227's PROBE_NUM).
    #[arg(long, default_value_t = arp::PROBE_NUM, value_parser = clap::value_parser!(u32).range(1..=20))]
    probes: u32,
    /// The shortest gap between probes (RFC 5227's PROBE_MIN).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    interval_min: HumanDuration,
    /// The longest gap between probes (RFC 5227's PROBE_MAX).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    interval_max: HumanDuration,
    /// How long to listen after the last probe (RFC 5227's ANNOUNCE_WAIT).
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    wait: HumanDuration,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ArpCheckArgs, context: &Context) -> CommandResult {
    let context = &context.for_json(args.json);
    if args.interval_max.0 < args.interval_min.0 {
        return Err(context.fail("--interval-max is shorter than --interval-min", Outcome::BadInput));
    }
    let options = ProbeOptions {
        probes: args.probes,
        interval_min: args.interval_min.0,
        interval_max: args.interval_max.0,
        final_wait: args.wait.0,
        interface: args.interface,
    };
    let runtime = context.runtime()?;
    let view = TaskView::new(context.quiet || args.json);
    let checked = runtime.block_on(arp::check(args.address, &options, &view));
    view.finish();
    let checked = match checked {
        Ok(checked) => checked,
        Err(error) => return Err(context.fail_with(&error)),
    };
    if args.json {
        context.print_json(&checked);
    } else {
        let seconds = checked.elapsed.as_secs_f64();
        match checked.in_use_by {
            Some(mac) => println!(
                "{}: {} is in use by {mac} (answered an ARP probe on {} after {seconds:.1} s)",
                context.out.error("address-in-use"),
                checked.address,
                checked.interface
            ),
            None => println!(
                "{} is free: {} ARP probes from {} in {seconds:.1} s, no answer",
                checked.address, checked.probes_sent, checked.interface
            ),
        }
    }
    Ok(if checked.in_use_by.is_some() { Outcome::DeviceFailure } else { Outcome::Success })
}
