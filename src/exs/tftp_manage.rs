//! TFTP Manage (0x003A) as types: the Action ICBs (Begin Download and the
//! queries, subtypes 0x00-0x08), the Data ICBs (0x37-0x3E) with typed values,
//! the request body (ICB count + ICBs) and the response body (Status, More
//! Status, ICB count + ICBs). Pure, no I/O.
//!
//! Field encodings the page does not publish are assumed here, once each:
//! IPv4 addresses are 4 bytes in network order; filenames are the name
//! followed by one NUL (as in the response trace: length 0x1B for a
//! 26-character path); timestamp, save options and load version are raw bytes;
//! the load-version and load-filename queries carry the load number as one byte.
//!
//! The response trace on the page has one byte fewer than the documented
//! layout (no More Status); [`TftpManageResponse::decode`] accepts both and
//! says which it used.

use std::fmt;
use std::net::Ipv4Addr;

use clap::ValueEnum;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::icb::{self, ACTION, DATA, Icb, IcbError};
use super::status::{MoreStatusReport, Status};
use super::trace::hex;

/// What a `tftp_manage` step or `exs tftp-manage --query` asks the controller for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TftpQuery {
    All,
    LocalConfig,
    LocalServer,
    AdjacentConfig,
    AdjacentServer,
    Timestamp,
    SaveOptions,
    LoadVersion,
    LoadFilename,
}

/// The longest filename the controller takes.
pub const MAX_FILENAME: usize = 127;
/// Request body limit for ICB data (after the count byte).
pub const MAX_REQUEST_ICB_DATA: usize = 252;

code_table! {
    /// Action ICB subtypes of TFTP Manage (unique within this message only).
    ActionSubtype: u8 {
        BeginDownload = 0x00 => "begin download",
        QueryLocalConfig = 0x01 => "query local matrix configuration filename",
        QueryLocalServer = 0x02 => "query local matrix server IP address",
        QueryAdjacentConfig = 0x03 => "query adjacent matrix configuration filename",
        QueryAdjacentServer = 0x04 => "query adjacent matrix server IP address",
        QueryTimestamp = 0x05 => "query timestamp",
        QuerySaveOptions = 0x06 => "query save options",
        QueryLoadVersion = 0x07 => "query load version",
        QueryLoadFilename = 0x08 => "query load filename",
    }
}

code_table! {
    /// Data ICB subtypes used by TFTP Manage (unique system-wide).
    DataSubtype: u8 {
        LocalConfig = 0x37 => "local matrix configuration filename",
        LocalServer = 0x38 => "local matrix server IP address",
        AdjacentConfig = 0x39 => "adjacent matrix configuration filename",
        AdjacentServer = 0x3A => "adjacent matrix server IP address",
        Timestamp = 0x3B => "timestamp",
        SaveOptions = 0x3C => "save options",
        LoadVersion = 0x3D => "load version",
        LoadFilename = 0x3E => "load filename",
    }
}

impl ActionSubtype {
    /// The Data ICB that answers this query (None for Begin Download).
    pub fn answer(self) -> Option<DataSubtype> {
        DataSubtype::from_code(0x36 + self.code()).filter(|_| self != ActionSubtype::BeginDownload)
    }

    /// Begin Download and queries 0x01-0x06 carry no data; 0x07 and 0x08 may
    /// carry the load number.
    pub fn takes_load(self) -> bool {
        matches!(self, ActionSubtype::QueryLoadVersion | ActionSubtype::QueryLoadFilename)
    }

    pub fn from_query(query: TftpQuery) -> Vec<ActionSubtype> {
        use ActionSubtype::*;
        match query {
            TftpQuery::All => ActionSubtype::ALL[1..].to_vec(),
            TftpQuery::LocalConfig => vec![QueryLocalConfig],
            TftpQuery::LocalServer => vec![QueryLocalServer],
            TftpQuery::AdjacentConfig => vec![QueryAdjacentConfig],
            TftpQuery::AdjacentServer => vec![QueryAdjacentServer],
            TftpQuery::Timestamp => vec![QueryTimestamp],
            TftpQuery::SaveOptions => vec![QuerySaveOptions],
            TftpQuery::LoadVersion => vec![QueryLoadVersion],
            TftpQuery::LoadFilename => vec![QueryLoadFilename],
        }
    }
}

impl DataSubtype {
    /// The query that this Data ICB answers.
    pub fn query(self) -> ActionSubtype {
        // 0x37..=0x3E answer 0x01..=0x08, in order.
        ActionSubtype::ALL[usize::from(self.code() - 0x36)]
    }
}

/// Why TFTP Manage bytes or values are not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TftpManageError {
    #[error("ICB list: {0}")]
    Icbs(#[from] IcbError),
    #[error("ICB {index} has type {kind:#04x}; TFTP Manage uses Action (0x01) and Data (0x02)")]
    UnknownIcbType { index: usize, kind: u8 },
    #[error("ICB {index}: {kind_name} subtype {subtype:#04x} is not a TFTP Manage subtype")]
    UnknownSubtype { index: usize, kind_name: &'static str, subtype: u8 },
    #[error("ICB subtype {subtype:#04x} ({name}) has {len} data bytes; {expected}")]
    BadLength { subtype: u8, name: &'static str, len: usize, expected: &'static str },
    #[error("filename is {len} characters; the controller takes at most 127")]
    FilenameTooLong { len: usize },
    #[error("filename is empty")]
    FilenameEmpty,
    #[error("filename `{name}` is not printable ASCII")]
    FilenameNotAscii { name: String },
    #[error("the ICBs need {len} bytes; a TFTP Manage request holds at most 252")]
    RequestTooLong { len: usize },
    #[error(
        "response body of {len} bytes fits neither the documented layout ({documented}) nor the trace layout ({trace})"
    )]
    ResponseLayout { len: usize, documented: String, trace: String },
}

/// A configuration or load filename: printable ASCII, 1 to 127 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Filename(String);

impl Filename {
    pub fn new(name: &str) -> Result<Filename, TftpManageError> {
        if name.is_empty() {
            return Err(TftpManageError::FilenameEmpty);
        }
        if !name.bytes().all(|b| (0x20..0x7F).contains(&b)) {
            return Err(TftpManageError::FilenameNotAscii { name: name.escape_default().to_string() });
        }
        if name.len() > MAX_FILENAME {
            return Err(TftpManageError::FilenameTooLong { len: name.len() });
        }
        Ok(Filename(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Name bytes and the terminating NUL.
    fn to_wire(&self) -> Vec<u8> {
        let mut bytes = self.0.as_bytes().to_vec();
        bytes.push(0);
        bytes
    }

    /// Up to the first NUL; a missing NUL is tolerated (the name is whole).
    fn from_wire(subtype: u8, data: &[u8]) -> Result<Filename, TftpManageError> {
        let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
        if end == 0 {
            return Err(TftpManageError::BadLength {
                subtype,
                name: "filename",
                len: data.len(),
                expected: "a filename is not empty",
            });
        }
        Filename::new(&String::from_utf8_lossy(&data[..end]))
    }
}

impl fmt::Display for Filename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Data ICB's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "field", content = "value", rename_all = "kebab-case")]
pub enum DataValue {
    LocalConfig(Filename),
    LocalServer(Ipv4Addr),
    AdjacentConfig(Filename),
    AdjacentServer(Ipv4Addr),
    Timestamp(#[serde(serialize_with = "hex_str")] Vec<u8>),
    SaveOptions(#[serde(serialize_with = "hex_str")] Vec<u8>),
    LoadVersion(#[serde(serialize_with = "hex_str")] Vec<u8>),
    LoadFilename(Filename),
}

fn hex_str<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex(bytes))
}

impl DataValue {
    pub fn subtype(&self) -> DataSubtype {
        match self {
            DataValue::LocalConfig(_) => DataSubtype::LocalConfig,
            DataValue::LocalServer(_) => DataSubtype::LocalServer,
            DataValue::AdjacentConfig(_) => DataSubtype::AdjacentConfig,
            DataValue::AdjacentServer(_) => DataSubtype::AdjacentServer,
            DataValue::Timestamp(_) => DataSubtype::Timestamp,
            DataValue::SaveOptions(_) => DataSubtype::SaveOptions,
            DataValue::LoadVersion(_) => DataSubtype::LoadVersion,
            DataValue::LoadFilename(_) => DataSubtype::LoadFilename,
        }
    }

    pub fn to_wire(&self) -> Vec<u8> {
        match self {
            DataValue::LocalConfig(name) | DataValue::AdjacentConfig(name) | DataValue::LoadFilename(name) => {
                name.to_wire()
            }
            DataValue::LocalServer(ip) | DataValue::AdjacentServer(ip) => ip.octets().to_vec(),
            DataValue::Timestamp(bytes) | DataValue::SaveOptions(bytes) | DataValue::LoadVersion(bytes) => {
                bytes.clone()
            }
        }
    }

    pub fn from_wire(subtype: DataSubtype, data: &[u8]) -> Result<DataValue, TftpManageError> {
        let code = subtype.code();
        let ip = || -> Result<Ipv4Addr, TftpManageError> {
            let octets: [u8; 4] = data.try_into().map_err(|_| TftpManageError::BadLength {
                subtype: code,
                name: subtype.text(),
                len: data.len(),
                expected: "an IPv4 address is 4 bytes",
            })?;
            Ok(Ipv4Addr::from(octets))
        };
        Ok(match subtype {
            DataSubtype::LocalConfig => DataValue::LocalConfig(Filename::from_wire(code, data)?),
            DataSubtype::AdjacentConfig => DataValue::AdjacentConfig(Filename::from_wire(code, data)?),
            DataSubtype::LoadFilename => DataValue::LoadFilename(Filename::from_wire(code, data)?),
            DataSubtype::LocalServer => DataValue::LocalServer(ip()?),
            DataSubtype::AdjacentServer => DataValue::AdjacentServer(ip()?),
            DataSubtype::Timestamp => DataValue::Timestamp(data.to_vec()),
            DataSubtype::SaveOptions => DataValue::SaveOptions(data.to_vec()),
            DataSubtype::LoadVersion => DataValue::LoadVersion(data.to_vec()),
        })
    }

    pub fn to_icb(&self) -> Icb {
        Icb::new(DATA, self.subtype().code(), self.to_wire())
    }
}

impl fmt::Display for DataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataValue::LocalConfig(name) | DataValue::AdjacentConfig(name) | DataValue::LoadFilename(name) => {
                write!(f, "{name}")
            }
            DataValue::LocalServer(ip) | DataValue::AdjacentServer(ip) => write!(f, "{ip}"),
            DataValue::Timestamp(bytes) | DataValue::SaveOptions(bytes) | DataValue::LoadVersion(bytes) => {
                if bytes.is_empty() { f.write_str("(empty)") } else { f.write_str(&hex(bytes)) }
            }
        }
    }
}

/// One ICB of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "icb", rename_all = "kebab-case")]
pub enum RequestIcb {
    Action {
        #[serde(serialize_with = "action_name")]
        subtype: ActionSubtype,
        #[serde(skip_serializing_if = "Option::is_none")]
        load: Option<u8>,
    },
    Data(DataValue),
}

fn action_name<S: serde::Serializer>(subtype: &ActionSubtype, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(subtype.text())
}

impl RequestIcb {
    pub fn action(subtype: ActionSubtype) -> RequestIcb {
        RequestIcb::Action { subtype, load: None }
    }

    pub fn to_icb(&self) -> Icb {
        match self {
            RequestIcb::Action { subtype, load } => Icb::new(ACTION, subtype.code(), load.iter().copied().collect()),
            RequestIcb::Data(value) => value.to_icb(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RequestIcb::Action { subtype, load: None } => subtype.text().to_string(),
            RequestIcb::Action { subtype, load: Some(n) } => format!("{} (load {n})", subtype.text()),
            RequestIcb::Data(value) => format!("set {} = {value}", value.subtype().text()),
        }
    }
}

/// A TFTP Manage request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TftpManageRequest {
    pub icbs: Vec<RequestIcb>,
}

impl TftpManageRequest {
    pub fn encode(&self) -> Result<Vec<u8>, TftpManageError> {
        let icbs: Vec<Icb> = self.icbs.iter().map(RequestIcb::to_icb).collect();
        let len: usize = icbs.iter().map(Icb::encoded_len).sum();
        if len > MAX_REQUEST_ICB_DATA {
            return Err(TftpManageError::RequestTooLong { len });
        }
        let mut body = Vec::with_capacity(1 + len);
        icb::encode_list(&icbs, &mut body)?;
        Ok(body)
    }

    /// Decodes and checks a request body as a controller would.
    pub fn decode(body: &[u8]) -> Result<TftpManageRequest, TftpManageError> {
        let icbs = icb::decode_list(body)?;
        let mut request = TftpManageRequest::default();
        for (i, icb) in icbs.iter().enumerate() {
            let index = i + 1;
            match icb.kind {
                ACTION => {
                    let subtype = ActionSubtype::from_code(icb.subtype).ok_or(TftpManageError::UnknownSubtype {
                        index,
                        kind_name: "Action",
                        subtype: icb.subtype,
                    })?;
                    let load = match (subtype.takes_load(), icb.data.as_slice()) {
                        (_, []) => None,
                        (true, [n]) => Some(*n),
                        (takes_load, data) => {
                            return Err(TftpManageError::BadLength {
                                subtype: icb.subtype,
                                name: subtype.text(),
                                len: data.len(),
                                expected: if takes_load {
                                    "it carries at most the load number (1 byte)"
                                } else {
                                    "this Action ICB carries no data"
                                },
                            });
                        }
                    };
                    request.icbs.push(RequestIcb::Action { subtype, load });
                }
                DATA => {
                    let subtype = DataSubtype::from_code(icb.subtype).ok_or(TftpManageError::UnknownSubtype {
                        index,
                        kind_name: "Data",
                        subtype: icb.subtype,
                    })?;
                    request.icbs.push(RequestIcb::Data(DataValue::from_wire(subtype, &icb.data)?));
                }
                kind => return Err(TftpManageError::UnknownIcbType { index, kind }),
            }
        }
        Ok(request)
    }
}

/// Which response layout a body was read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseLayout {
    /// Status, More Status, ICB count, ICBs (the page's table).
    Documented,
    /// Status, ICB count, ICBs: the page's response trace, one byte short.
    NoMoreStatus,
    /// Status and More Status only.
    StatusAndMore,
    /// Status only (Length 0x0007).
    StatusOnly,
}

impl ResponseLayout {
    pub fn text(self) -> &'static str {
        match self {
            ResponseLayout::Documented => "documented layout",
            ResponseLayout::NoMoreStatus => "trace layout (no More Status)",
            ResponseLayout::StatusAndMore => "status and more status only",
            ResponseLayout::StatusOnly => "status only",
        }
    }
}

/// One ICB of a response: a typed value when it is one, else the raw ICB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", rename_all = "kebab-case")]
pub enum ResponseIcb {
    /// A value, carried in the documented Data ICB or (as in the page's trace)
    /// in the query's Action ICB.
    Value {
        in_action_icb: bool,
        #[serde(flatten)]
        value: DataValue,
    },
    /// An ICB that holds no value (e.g. a query echoed without data) or one
    /// whose data does not fit its subtype.
    Other {
        #[serde(flatten)]
        icb: Icb,
        #[serde(skip_serializing_if = "Option::is_none")]
        problem: Option<String>,
    },
}

impl ResponseIcb {
    fn from_icb(icb: Icb) -> ResponseIcb {
        let subtype = match icb.kind {
            DATA => DataSubtype::from_code(icb.subtype),
            ACTION if !icb.data.is_empty() => ActionSubtype::from_code(icb.subtype).and_then(ActionSubtype::answer),
            _ => None,
        };
        let Some(subtype) = subtype else {
            return ResponseIcb::Other { icb, problem: None };
        };
        match DataValue::from_wire(subtype, &icb.data) {
            Ok(value) => ResponseIcb::Value { in_action_icb: icb.kind == ACTION, value },
            Err(error) => ResponseIcb::Other { icb, problem: Some(error.to_string()) },
        }
    }

    pub fn value(&self) -> Option<&DataValue> {
        match self {
            ResponseIcb::Value { value, .. } => Some(value),
            ResponseIcb::Other { .. } => None,
        }
    }
}

/// A TFTP Manage response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TftpManageResponse {
    pub status: Status,
    pub more_status: Option<MoreStatusReport>,
    pub layout: ResponseLayout,
    pub icbs: Vec<ResponseIcb>,
}

impl TftpManageResponse {
    /// Reads a response body with the documented layout, or, when that does not
    /// use the bytes exactly, with the trace's layout.
    pub fn decode(body: &[u8]) -> Result<TftpManageResponse, TftpManageError> {
        let status = match body {
            [hi, lo, ..] => Status(u16::from_be_bytes([*hi, *lo])),
            _ => {
                return Err(TftpManageError::ResponseLayout {
                    len: body.len(),
                    documented: "no 2-byte status".into(),
                    trace: "no 2-byte status".into(),
                });
            }
        };
        let build = |more: Option<u8>, layout, icbs: Vec<Icb>| TftpManageResponse {
            status,
            more_status: more.map(|m| MoreStatusReport::new(status, m)),
            layout,
            icbs: icbs.into_iter().map(ResponseIcb::from_icb).collect(),
        };
        match body.len() {
            2 => return Ok(build(None, ResponseLayout::StatusOnly, Vec::new())),
            3 => return Ok(build(Some(body[2]), ResponseLayout::StatusAndMore, Vec::new())),
            _ => {}
        }
        let documented = match icb::decode_list(&body[3..]) {
            Ok(icbs) => return Ok(build(Some(body[2]), ResponseLayout::Documented, icbs)),
            Err(error) => error,
        };
        match icb::decode_list(&body[2..]) {
            Ok(icbs) => Ok(build(None, ResponseLayout::NoMoreStatus, icbs)),
            Err(trace) => Err(TftpManageError::ResponseLayout {
                len: body.len(),
                documented: documented.to_string(),
                trace: trace.to_string(),
            }),
        }
    }

    /// Encodes with the given layout (the simulator can answer either way).
    pub fn encode(status: Status, more: u8, icbs: &[Icb], layout: ResponseLayout) -> Result<Vec<u8>, TftpManageError> {
        let mut body = status.0.to_be_bytes().to_vec();
        match layout {
            ResponseLayout::StatusOnly => return Ok(body),
            ResponseLayout::StatusAndMore => {
                body.push(more);
                return Ok(body);
            }
            ResponseLayout::Documented => body.push(more),
            ResponseLayout::NoMoreStatus => {}
        }
        icb::encode_list(icbs, &mut body)?;
        Ok(body)
    }

    /// Every value the response carries.
    pub fn values(&self) -> impl Iterator<Item = &DataValue> {
        self.icbs.iter().filter_map(ResponseIcb::value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exs::frame::Framing;
    use crate::exs::trace::parse_hex;
    use proptest::prelude::*;

    const RESPONSE_TRACE: &str = "[00 26] [00 3A] 00 00 FF [00 10] 01 01 01 [1B 63 3A 5C 74 66 74 70 62 6F 6F 74 5C 74 66 74 70 5F 6E 6F 5F 74 73 2E 63 66 67 00]";

    #[test]
    fn the_page_response_trace_decodes() {
        let bytes = parse_hex(RESPONSE_TRACE).unwrap();
        let (frame, used) = Framing::default().decode_trace(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!((frame.msg_type, frame.seq, frame.node), (0x3A, 0, 0xFF));
        let response = TftpManageResponse::decode(&frame.body).unwrap();
        assert_eq!(response.status, Status(0x0010));
        assert!(response.status.is_positive());
        assert_eq!(response.layout, ResponseLayout::NoMoreStatus);
        assert_eq!(response.more_status, None);
        let values: Vec<_> = response.values().cloned().collect();
        assert_eq!(values, vec![DataValue::LocalConfig(Filename::new(r"c:\tftpboot\tftp_no_ts.cfg").unwrap())]);
        assert!(matches!(response.icbs[0], ResponseIcb::Value { in_action_icb: true, .. }));
    }

    #[test]
    fn the_page_request_decodes_as_a_query() {
        let request = TftpManageRequest::decode(&[1, 1, 1, 0]).unwrap();
        assert_eq!(request.icbs, vec![RequestIcb::action(ActionSubtype::QueryLocalConfig)]);
        assert_eq!(request.encode().unwrap(), [1, 1, 1, 0]);
    }

    #[test]
    fn documented_layout_with_data_icbs() {
        let icbs = [
            DataValue::LocalConfig(Filename::new("tftpboot/csp.cfg").unwrap()).to_icb(),
            DataValue::LocalServer(Ipv4Addr::new(127, 0, 0, 1)).to_icb(),
        ];
        let body = TftpManageResponse::encode(Status(0x10), 0, &icbs, ResponseLayout::Documented).unwrap();
        let response = TftpManageResponse::decode(&body).unwrap();
        assert_eq!(response.layout, ResponseLayout::Documented);
        assert_eq!(response.more_status.as_ref().unwrap().value, 0);
        assert_eq!(response.values().count(), 2);
        let failed = TftpManageResponse::encode(Status(0x08), 0x01, &[], ResponseLayout::Documented).unwrap();
        let response = TftpManageResponse::decode(&failed).unwrap();
        assert_eq!(response.status.known(), Some(super::super::status::StatusCode::TftpFailed));
        assert_eq!(response.more_status.unwrap().text, super::super::status::MoreStatus::ProtocolError.text());
        assert_eq!(TftpManageResponse::decode(&[0, 0x10]).unwrap().layout, ResponseLayout::StatusOnly);
        assert_eq!(TftpManageResponse::decode(&[0, 0x08, 2]).unwrap().layout, ResponseLayout::StatusAndMore);
    }

    #[test]
    fn invalid_bodies_say_why() {
        assert!(matches!(TftpManageResponse::decode(&[0]), Err(TftpManageError::ResponseLayout { len: 1, .. })));
        let error = TftpManageResponse::decode(&[0, 0x10, 0, 2, 1, 1, 0]).unwrap_err();
        assert!(error.to_string().contains("fits neither"), "{error}");
        assert_eq!(
            TftpManageRequest::decode(&[1, 4, 1, 0]),
            Err(TftpManageError::UnknownIcbType { index: 1, kind: 4 })
        );
        assert!(matches!(
            TftpManageRequest::decode(&[1, 1, 9, 0]),
            Err(TftpManageError::UnknownSubtype { index: 1, kind_name: "Action", subtype: 9 })
        ));
        assert!(matches!(
            TftpManageRequest::decode(&[1, 2, 0x38, 3, 1, 2, 3]),
            Err(TftpManageError::BadLength { subtype: 0x38, len: 3, .. })
        ));
        assert!(matches!(
            TftpManageRequest::decode(&[1, 1, 0x01, 1, 5]),
            Err(TftpManageError::BadLength { subtype: 0x01, len: 1, .. })
        ));
        assert!(matches!(TftpManageRequest::decode(&[2, 1, 1, 0]), Err(TftpManageError::Icbs(_))));
        assert!(matches!(
            TftpManageRequest::decode(&[1, 2, 0x37, 1, 0]),
            Err(TftpManageError::BadLength { subtype: 0x37, .. })
        ));
    }

    #[test]
    fn filenames_are_checked() {
        assert_eq!(Filename::new(""), Err(TftpManageError::FilenameEmpty));
        assert_eq!(Filename::new(&"a".repeat(128)), Err(TftpManageError::FilenameTooLong { len: 128 }));
        assert!(Filename::new(&"a".repeat(127)).is_ok());
        assert!(matches!(Filename::new("a\0b"), Err(TftpManageError::FilenameNotAscii { .. })));
        let too_big = TftpManageRequest {
            icbs: vec![
                RequestIcb::Data(DataValue::LocalConfig(Filename::new(&"a".repeat(127)).unwrap())),
                RequestIcb::Data(DataValue::AdjacentConfig(Filename::new(&"b".repeat(127)).unwrap())),
            ],
        };
        assert_eq!(too_big.encode(), Err(TftpManageError::RequestTooLong { len: 262 }));
    }

    #[test]
    fn queries_and_answers_pair_up() {
        for query in &ActionSubtype::ALL[1..] {
            assert_eq!(query.answer().unwrap().query(), *query);
        }
        assert_eq!(ActionSubtype::BeginDownload.answer(), None);
        assert_eq!(ActionSubtype::from_query(TftpQuery::All).len(), 8);
    }

    fn any_value() -> impl Strategy<Value = DataValue> {
        let name = "[ -~]{1,127}".prop_map(|s| Filename::new(&s).unwrap());
        let bytes = proptest::collection::vec(any::<u8>(), 0..20);
        prop_oneof![
            name.clone().prop_map(DataValue::LocalConfig),
            any::<[u8; 4]>().prop_map(|o| DataValue::LocalServer(o.into())),
            name.clone().prop_map(DataValue::AdjacentConfig),
            any::<[u8; 4]>().prop_map(|o| DataValue::AdjacentServer(o.into())),
            bytes.clone().prop_map(DataValue::Timestamp),
            bytes.clone().prop_map(DataValue::SaveOptions),
            bytes.prop_map(DataValue::LoadVersion),
            name.prop_map(DataValue::LoadFilename),
        ]
    }

    proptest! {
        #[test]
        fn request_round_trip(values in proptest::collection::vec(any_value(), 0..3), actions in proptest::collection::vec(0usize..9, 0..4)) {
            let mut icbs: Vec<RequestIcb> = values.into_iter().map(RequestIcb::Data).collect();
            icbs.extend(actions.into_iter().map(|a| RequestIcb::action(ActionSubtype::ALL[a])));
            let request = TftpManageRequest { icbs };
            // Every generated request encodes unless its ICBs are over the
            // limit, and then it fails for that alone (no case is skipped).
            let len: usize = request.icbs.iter().map(|icb| icb.to_icb().encoded_len()).sum();
            if len <= MAX_REQUEST_ICB_DATA {
                let body = request.encode().unwrap();
                prop_assert_eq!(TftpManageRequest::decode(&body).unwrap(), request);
            } else {
                prop_assert_eq!(request.encode(), Err(TftpManageError::RequestTooLong { len }));
            }
        }

        #[test]
        fn response_round_trip(status in any::<u16>(), more in any::<u8>(), values in proptest::collection::vec(any_value(), 0..2)) {
            let icbs: Vec<Icb> = values.iter().map(DataValue::to_icb).collect();
            let body = TftpManageResponse::encode(Status(status), more, &icbs, ResponseLayout::Documented).unwrap();
            let response = TftpManageResponse::decode(&body).unwrap();
            prop_assert_eq!(response.status, Status(status));
            prop_assert_eq!(response.values().cloned().collect::<Vec<_>>(), values);
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..260)) {
            let _ = TftpManageResponse::decode(&body);
            let _ = TftpManageRequest::decode(&body);
        }
    }
}
