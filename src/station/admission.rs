//! Whether a fixture takes the unit that arrived, decided without I/O.
//!
//! The fixture's driver (`fixture::take_unit`) gathers the facts one
//! question at a time: the database's health, then the unit's standing,
//! then (when the fixture gives no address and the station has a pool) a
//! lease, then the run's row. After each answer it calls [`decide`] again,
//! which names the next question, the refusal, or the take. The order of
//! the questions is the rule: nothing is leased for a unit that may not be
//! taken, and nothing is written while the database is known to be away.
//! [`values`] gives the values a taken unit runs with.

use std::net::Ipv4Addr;
use std::path::Path;

use super::file::{Fixture, LeaseKind};
use crate::profile::{DeviceValues, ValueSource};
use crate::store::Standing;

/// Why a unit is not taken, as the database and the events write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its banner showed no MAC.
    NoIdentity,
    /// A run of it passed already, and `--reflash` is not given.
    DoneBefore,
    /// It runs at another fixture or station.
    RunningElsewhere,
    /// Every address of the pool is leased.
    NoAddress,
    /// The unit database cannot be reached.
    DatabaseUnavailable,
}

impl Reason {
    /// The text in the refusal's row and event.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoIdentity => "no-identity",
            Reason::DoneBefore => "done-before",
            Reason::RunningElsewhere => "running-elsewhere",
            Reason::NoAddress => "no-address",
            Reason::DatabaseUnavailable => "database-unavailable",
        }
    }
}

/// A unit not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: String,
    /// The database failed to answer: the recorder is to be marked
    /// unhealthy (records spool, no new unit is taken).
    pub database_lost: bool,
    /// The run's lease (if one was taken) is to be given back first.
    pub release_lease: bool,
}

impl Refusal {
    fn new(reason: Reason, detail: String) -> Refusal {
        Refusal { reason, detail, database_lost: false, release_lease: false }
    }

    fn lost(detail: String) -> Refusal {
        Refusal { database_lost: true, ..Refusal::new(Reason::DatabaseUnavailable, detail) }
    }
}

/// The station's address pool, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFacts<'a> {
    /// The pool as the station file writes it.
    pub text: &'a str,
    pub lease: LeaseKind,
    pub mask: Ipv4Addr,
    pub gateway: Option<Ipv4Addr>,
}

/// Why the run's row could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotBegun {
    /// Another fixture or station began a run of the unit at the same moment.
    Busy,
    /// The database failed.
    Failed(String),
}

/// What is known about the unit and the station so far. A `None` answer
/// is a question not asked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// Whether the unit database answers (the recorder's health).
    pub healthy: bool,
    /// `--reflash`: units that passed before are taken again.
    pub reflash: bool,
    /// The fixture's own `ip`, when it gives one that parses.
    pub fixed_ip: Option<Ipv4Addr>,
    /// The station's pool, when it has one.
    pub pool: Option<PoolFacts<'a>>,
    /// The unit's standing, or the database's error.
    pub standing: Option<Result<Standing, String>>,
    /// The lease: an address, none free, or the database's error.
    pub lease: Option<Result<Option<Ipv4Addr>, String>>,
    /// Whether the run's row was written.
    pub begun: Option<Result<(), NotBegun>>,
}

/// What the driver asks next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Question {
    /// The unit's standing in the database.
    Standing,
    /// An address from the pool; `kept`: the unit keeps it between runs.
    Lease { kept: bool },
    /// Write the run's row for this plan.
    Begin(Plan),
}

/// How a taken unit runs: its address, and the pool's values with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ip: Option<Ipv4Addr>,
    /// `mask` and `gateway`, given with a leased address.
    pub leased: Option<(Ipv4Addr, Option<Ipv4Addr>)>,
}

/// The decision on the facts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Ask(Question),
    Refuse(Refusal),
    /// The run's row is written: run the unit.
    Take(Plan),
}

/// Decides on `facts`: the next question, a refusal, or the take.
pub fn decide(facts: &Facts) -> Admission {
    if !facts.healthy {
        let detail = "the unit database cannot be reached: no new unit is taken until it is back".to_string();
        return Admission::Refuse(Refusal::new(Reason::DatabaseUnavailable, detail));
    }
    let Some(standing) = &facts.standing else { return Admission::Ask(Question::Standing) };
    match standing {
        Err(error) => return Admission::Refuse(Refusal::lost(error.clone())),
        Ok(Standing::DoneBefore { station, ended_ms, .. }) if !facts.reflash => {
            let detail =
                format!("it passed at station {station} (run ended at {ended_ms} ms); use --reflash to run it again");
            return Admission::Refuse(Refusal::new(Reason::DoneBefore, detail));
        }
        Ok(Standing::RunningAt { station, fixture }) => {
            let detail = format!("it is being run at station {station}, fixture {fixture}");
            return Admission::Refuse(Refusal::new(Reason::RunningElsewhere, detail));
        }
        Ok(_) => {}
    }
    let plan = match (facts.fixed_ip, facts.pool) {
        (None, Some(pool)) => match &facts.lease {
            None => return Admission::Ask(Question::Lease { kept: pool.lease == LeaseKind::Unit }),
            Some(Ok(Some(address))) => Plan { ip: Some(*address), leased: Some((pool.mask, pool.gateway)) },
            Some(Ok(None)) => {
                let detail = format!("every address of the pool {} is leased", pool.text);
                return Admission::Refuse(Refusal::new(Reason::NoAddress, detail));
            }
            Some(Err(error)) => return Admission::Refuse(Refusal::lost(error.clone())),
        },
        (ip, _) => Plan { ip, leased: None },
    };
    match &facts.begun {
        None => Admission::Ask(Question::Begin(plan)),
        Some(Ok(())) => Admission::Take(plan),
        Some(Err(NotBegun::Busy)) => {
            let detail = "another fixture or station took it at the same moment".to_string();
            Admission::Refuse(Refusal { release_lease: true, ..Refusal::new(Reason::RunningElsewhere, detail) })
        }
        Some(Err(NotBegun::Failed(error))) => {
            Admission::Refuse(Refusal { release_lease: true, ..Refusal::lost(error.clone()) })
        }
    }
}

/// The values a taken unit runs with: its identity, the fixture, the
/// plan's address and the pool's values; the fixture's own values win.
pub fn values(
    station_file: &Path,
    fixture: &Fixture,
    mac: &str,
    serial_number: Option<&str>,
    plan: &Plan,
) -> DeviceValues {
    let mut values = DeviceValues::new();
    let source = ValueSource::Station { file: station_file.to_path_buf() };
    values.insert("name", format!("{}:{mac}", fixture.name), source.clone());
    values.insert("mac", mac, source.clone());
    if let Some(serial) = serial_number {
        values.insert("serial_number", serial, source.clone());
    }
    values.insert("fixture", fixture.name.clone(), source.clone());
    values.insert("port", fixture.port.clone(), source.clone());
    if let Some((mask, gateway)) = plan.leased {
        values.insert("mask", mask.to_string(), source.clone());
        if let Some(gateway) = gateway {
            values.insert("gateway", gateway.to_string(), source.clone());
        }
    }
    if let Some(ip) = plan.ip {
        values.insert("ip", ip.to_string(), source.clone());
    }
    for (name, value) in &fixture.set {
        values.insert(name.clone(), value.clone(), source.clone());
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: PoolFacts<'static> = PoolFacts {
        text: "10.0.0.10-10.0.0.11",
        lease: LeaseKind::Run,
        mask: Ipv4Addr::new(255, 255, 255, 0),
        gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
    };

    fn facts() -> Facts<'static> {
        Facts { healthy: true, reflash: false, fixed_ip: None, pool: None, standing: None, lease: None, begun: None }
    }

    fn free() -> Facts<'static> {
        Facts { standing: Some(Ok(Standing::Free)), ..facts() }
    }

    fn refusal(admission: Admission) -> Refusal {
        match admission {
            Admission::Refuse(refusal) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn done_before() -> Standing {
        Standing::DoneBefore { run_id: "r1".into(), station: "line-1".into(), ended_ms: 42 }
    }

    #[test]
    fn reasons_keep_their_texts() {
        let all = [
            (Reason::NoIdentity, "no-identity"),
            (Reason::DoneBefore, "done-before"),
            (Reason::RunningElsewhere, "running-elsewhere"),
            (Reason::NoAddress, "no-address"),
            (Reason::DatabaseUnavailable, "database-unavailable"),
        ];
        for (reason, text) in all {
            assert_eq!(reason.as_str(), text);
        }
    }

    #[test]
    fn an_unhealthy_database_refuses_before_asking_anything() {
        let refused = refusal(decide(&Facts { healthy: false, ..facts() }));
        assert_eq!(refused.reason, Reason::DatabaseUnavailable);
        assert_eq!(refused.detail, "the unit database cannot be reached: no new unit is taken until it is back");
        // Already known to be away: nothing to mark, nothing to release.
        assert!(!refused.database_lost && !refused.release_lease);
    }

    #[test]
    fn the_standing_is_asked_first() {
        assert_eq!(decide(&facts()), Admission::Ask(Question::Standing));
    }

    #[test]
    fn a_standing_error_loses_the_database() {
        let refused = refusal(decide(&Facts { standing: Some(Err("timed out".into())), ..facts() }));
        assert_eq!(refused, Refusal::lost("timed out".into()));
        assert_eq!(refused.reason, Reason::DatabaseUnavailable);
        assert!(refused.database_lost && !refused.release_lease);
    }

    #[test]
    fn a_passed_unit_is_refused_without_reflash() {
        let refused = refusal(decide(&Facts { standing: Some(Ok(done_before())), ..facts() }));
        assert_eq!(refused.reason, Reason::DoneBefore);
        assert_eq!(refused.detail, "it passed at station line-1 (run ended at 42 ms); use --reflash to run it again");
        assert!(!refused.database_lost && !refused.release_lease);
    }

    #[test]
    fn a_passed_unit_is_taken_with_reflash() {
        let facts = Facts { reflash: true, standing: Some(Ok(done_before())), ..facts() };
        assert_eq!(decide(&facts), Admission::Ask(Question::Begin(Plan { ip: None, leased: None })));
    }

    #[test]
    fn a_unit_running_elsewhere_is_refused_even_with_reflash() {
        let running = Standing::RunningAt { station: "line-2".into(), fixture: "f3".into() };
        for reflash in [false, true] {
            let refused = refusal(decide(&Facts { reflash, standing: Some(Ok(running.clone())), ..facts() }));
            assert_eq!(refused.reason, Reason::RunningElsewhere);
            assert_eq!(refused.detail, "it is being run at station line-2, fixture f3");
        }
    }

    #[test]
    fn without_a_pool_the_fixture_address_is_used() {
        let ip = Ipv4Addr::new(192, 168, 1, 5);
        assert_eq!(
            decide(&Facts { fixed_ip: Some(ip), ..free() }),
            Admission::Ask(Question::Begin(Plan { ip: Some(ip), leased: None }))
        );
        assert_eq!(decide(&free()), Admission::Ask(Question::Begin(Plan { ip: None, leased: None })));
    }

    #[test]
    fn a_fixture_address_wins_over_the_pool() {
        let ip = Ipv4Addr::new(192, 168, 1, 5);
        let facts = Facts { fixed_ip: Some(ip), pool: Some(POOL), ..free() };
        assert_eq!(decide(&facts), Admission::Ask(Question::Begin(Plan { ip: Some(ip), leased: None })));
    }

    #[test]
    fn the_lease_kind_says_whether_the_unit_keeps_its_address() {
        let run = Facts { pool: Some(POOL), ..free() };
        assert_eq!(decide(&run), Admission::Ask(Question::Lease { kept: false }));
        let unit = Facts { pool: Some(PoolFacts { lease: LeaseKind::Unit, ..POOL }), ..free() };
        assert_eq!(decide(&unit), Admission::Ask(Question::Lease { kept: true }));
    }

    #[test]
    fn nothing_is_leased_for_a_refused_unit() {
        let facts = Facts { pool: Some(POOL), standing: Some(Ok(done_before())), ..facts() };
        assert_eq!(refusal(decide(&facts)).reason, Reason::DoneBefore);
    }

    #[test]
    fn a_leased_address_comes_with_the_pool_values() {
        let address = Ipv4Addr::new(10, 0, 0, 10);
        let facts = Facts { pool: Some(POOL), lease: Some(Ok(Some(address))), ..free() };
        let plan = Plan { ip: Some(address), leased: Some((POOL.mask, POOL.gateway)) };
        assert_eq!(decide(&facts), Admission::Ask(Question::Begin(plan.clone())));
        assert_eq!(decide(&Facts { begun: Some(Ok(())), ..facts }), Admission::Take(plan));
    }

    #[test]
    fn an_exhausted_pool_refuses() {
        let refused = refusal(decide(&Facts { pool: Some(POOL), lease: Some(Ok(None)), ..free() }));
        assert_eq!(refused.reason, Reason::NoAddress);
        assert_eq!(refused.detail, "every address of the pool 10.0.0.10-10.0.0.11 is leased");
        assert!(!refused.database_lost && !refused.release_lease);
    }

    #[test]
    fn a_lease_error_loses_the_database() {
        let refused = refusal(decide(&Facts { pool: Some(POOL), lease: Some(Err("gone".into())), ..free() }));
        assert_eq!(refused, Refusal::lost("gone".into()));
        assert!(!refused.release_lease);
    }

    #[test]
    fn a_run_begun_elsewhere_at_the_same_moment_is_refused_and_its_lease_released() {
        let refused = refusal(decide(&Facts { begun: Some(Err(NotBegun::Busy)), ..free() }));
        assert_eq!(refused.reason, Reason::RunningElsewhere);
        assert_eq!(refused.detail, "another fixture or station took it at the same moment");
        assert!(refused.release_lease && !refused.database_lost);
    }

    #[test]
    fn a_failed_begin_loses_the_database_and_releases_the_lease() {
        let refused = refusal(decide(&Facts { begun: Some(Err(NotBegun::Failed("disk full".into()))), ..free() }));
        assert_eq!(refused.reason, Reason::DatabaseUnavailable);
        assert_eq!(refused.detail, "disk full");
        assert!(refused.release_lease && refused.database_lost);
    }

    #[test]
    fn a_begun_run_is_taken() {
        let facts = Facts { begun: Some(Ok(())), ..free() };
        assert_eq!(decide(&facts), Admission::Take(Plan { ip: None, leased: None }));
    }

    fn fixture(set: &[(&str, &str)]) -> Fixture {
        Fixture {
            name: "f1".into(),
            port: "/dev/ttyUSB0".into(),
            set: set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn values_name_the_unit_and_its_address() {
        let plan = Plan { ip: Some(Ipv4Addr::new(10, 0, 0, 10)), leased: Some((POOL.mask, POOL.gateway)) };
        let values = values(Path::new("line.yaml"), &fixture(&[]), "00:40:9D:01:02:03", Some("SN1"), &plan);
        assert_eq!(values.get("name"), Some("f1:00:40:9D:01:02:03"));
        assert_eq!(values.get("mac"), Some("00:40:9D:01:02:03"));
        assert_eq!(values.get("serial_number"), Some("SN1"));
        assert_eq!(values.get("fixture"), Some("f1"));
        assert_eq!(values.get("port"), Some("/dev/ttyUSB0"));
        assert_eq!(values.get("ip"), Some("10.0.0.10"));
        assert_eq!(values.get("mask"), Some("255.255.255.0"));
        assert_eq!(values.get("gateway"), Some("10.0.0.1"));
    }

    #[test]
    fn values_without_a_lease_have_no_pool_values_and_the_fixture_wins() {
        let plan = Plan { ip: None, leased: None };
        let fixture = fixture(&[("ip", "dhcp"), ("mask", "255.0.0.0")]);
        let values = values(Path::new("line.yaml"), &fixture, "00:40:9D:01:02:03", None, &plan);
        assert_eq!(values.get("serial_number"), None);
        assert_eq!(values.get("gateway"), None);
        assert_eq!(values.get("ip"), Some("dhcp"));
        assert_eq!(values.get("mask"), Some("255.0.0.0"));
    }
}
