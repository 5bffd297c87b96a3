//! The options that say which device a profile is filled in for: an
//! inventory row (`--inventory F --device NAME`) and `--set k=v` pairs on top.
//! Shared by `profile show`, `serial dialog` and `run`.

use std::path::PathBuf;

use clap::Args;

use super::{Context, Outcome};
use crate::profile::{self, Device, DeviceValues, Inventory};

#[derive(Debug, Args)]
pub struct DeviceValueArgs {
    /// Inventory (YAML or CSV) to take the device's values from.
    #[arg(long, value_name = "F", requires = "device")]
    pub inventory: Option<PathBuf>,
    /// Device name in the inventory.
    #[arg(long, value_name = "NAME", requires = "inventory")]
    pub device: Option<String>,
    /// Set a variable (repeatable), e.g. `--set ip=192.168.1.50`; overrides the inventory.
    #[arg(long = "set", value_name = "K=V")]
    pub set: Vec<String>,
}

impl DeviceValueArgs {
    /// The device's inventory row (when one was named) and its values with
    /// the `--set` pairs on top. Errors are printed; the outcome says how
    /// the command ends.
    pub fn resolve(&self, context: &Context) -> Result<(Option<Device>, DeviceValues), Outcome> {
        let mut values = DeviceValues::new();
        let mut found = None;
        if let (Some(path), Some(name)) = (&self.inventory, &self.device) {
            let inventory = Inventory::load(path).map_err(|error| context.fail_profile(&error))?;
            let Some(device) = inventory.device(name) else {
                let names: Vec<&str> = inventory.devices.iter().map(|d| d.name.as_str()).collect();
                let mut message = format!("no device `{name}` in {}", inventory.path.display());
                if let Some(guess) = profile::problem::did_you_mean(name, names.iter().copied()) {
                    message.push_str(&format!("\n  help: did you mean `{guess}`?"));
                }
                return Err(context.fail(message, Outcome::BadInput));
            };
            values.extend(DeviceValues::from_inventory(&inventory, device));
            found = Some(device.clone());
        }
        let set =
            DeviceValues::from_set_pairs(&self.set).map_err(|message| context.fail(message, Outcome::BadInput))?;
        values.extend(set);
        Ok((found, values))
    }
}
