//! `addp_configure`: the network block's settings to the unit with the
//! step's MAC over ADDP, then a reboot, each judged by the unit's answer
//! (`addp::client`); for a unit without a serial cable.

use std::net::Ipv4Addr;

use super::{StepContext, StepDone, StepError};
use crate::addp::client::{OperateOptions, operate};
use crate::addp::{Password, Request};
use crate::net::arp::Mac;
use crate::profile::{AddpConfigure, Template};

pub async fn run(step: &AddpConfigure, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    let network = &cx.profile.network;
    let mac: Mac = step.mac.as_str().parse().map_err(StepError::NotAMac)?;
    let address = |field: &'static str, value: &Option<Template>, default: Option<Ipv4Addr>| match value
        .as_ref()
        .map(|t| t.as_str().trim().parse::<Ipv4Addr>())
    {
        Some(Ok(address)) => Ok(address),
        None if default.is_some() => Ok(default.expect("checked")),
        _ => Err(StepError::NotAnAddress { text: format!("network.{field}"), purpose: "for ADDP" }),
    };
    let password = || Password(step.password.expose().as_bytes().to_vec());
    let request = if network.dhcp {
        Request::Dhcp { enable: true, mac, password: password() }
    } else {
        Request::SetStatic {
            ip: address("ip", &network.ip, None)?,
            mask: address("mask", &network.mask, None)?,
            gateway: address("gateway", &network.gateway, Some(Ipv4Addr::UNSPECIFIED))?,
            mac,
            password: password(),
        }
    };
    let options = OperateOptions {
        interface: step.interface.clone(),
        wait: step.wait.0,
        retries: step.retries,
        ..OperateOptions::default()
    };
    let set = operate(&request, &options).await?;
    let mut retries = set.attempts - 1;
    let what = match &request {
        Request::SetStatic { ip, mask, .. } => format!("{ip} / {mask}"),
        _ => "DHCP on".into(),
    };
    let mut detail = format!("{mac} took {what} (answered from {})", set.from.ip());
    if step.reboot {
        let rebooted = operate(&Request::Reboot { mac, password: password() }, &options).await?;
        retries += rebooted.attempts - 1;
        detail.push_str("; restarting");
    }
    Ok(StepDone { retries, ..StepDone::passed(detail) })
}
