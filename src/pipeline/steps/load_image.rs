//! `load_image`: wait for the boot loader's text, send the image by XMODEM,
//! XMODEM-1K or YMODEM, wait for its end text. [`load`] is the step on any
//! console (`serial send` uses it alone); [`read_image`] reads and checks an
//! image before anything is sent.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{StepContext, StepDone, StepError, compile};
use crate::family::Family;
use crate::netos::boot_header::ImageCheck;
use crate::pipeline::journal::StepOutcome;
use crate::pipeline::report::ImageHash;
use crate::profile::LoadImage;
use crate::progress::{Progress, ProgressEvent, TaskKind};
use crate::serial::console::{Console, SendOptions};
use crate::serial::transfer::{self, SendReport};
use crate::serial::xmodem::{Outgoing, Sender, SenderOptions};

/// The step in a device's run: the image read now is the image sent, and
/// its hash is the one recorded.
pub async fn run(step: &LoadImage, cx: &mut StepContext<'_>) -> Result<StepDone, StepError> {
    let (base_dir, baud, progress, family) = (cx.base_dir, cx.profile.serial.baud, cx.progress, cx.profile.family);
    let console = cx.console().await?;
    let image = read_image(&base_dir.join(step.file.as_str()), family)?;
    let hashed = ImageHash {
        file: step.file.to_string(),
        sha256: crate::digest::sha256_hex(&image.data),
        bytes: image.data.len() as u64,
    };
    let sent = load(console, step, image, baud, progress).await?;
    Ok(StepDone {
        outcome: StepOutcome::Passed,
        detail: format!(
            "sent {} bytes in {:.1} s{}",
            sent.stats.acked_bytes,
            sent.elapsed.as_secs_f64(),
            sent.stats.warning().map(|w| format!("; warning: {w}")).unwrap_or_default()
        ),
        retries: sent.stats.retransmissions as u32,
        sent: vec![hashed],
    })
}

/// Reads an image for `load_image`, refusing an empty one, one that is not
/// a regular file or too large ([`crate::input_file::IMAGE`]), and one that
/// fails the family's image check (NET+OS: a `bootHdr` image whose length or
/// CRC is wrong would be flashed and fail at boot).
pub fn read_image(path: &Path, family: Family) -> Result<Outgoing, StepError> {
    let shown = path.display().to_string();
    let data = crate::input_file::read(path, &crate::input_file::IMAGE)?;
    let check = family.image_check(&data);
    if matches!(check, ImageCheck::Truncated { .. } | ImageCheck::BadCrc { .. }) {
        return Err(StepError::ImageInvalid { path: shown, check });
    }
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let name = path.file_name().map_or_else(|| "image.bin".into(), |n| n.to_string_lossy().into_owned());
    Ok(Outgoing { name, data, mtime })
}

/// Waits for `wait_for`, sends `start_command`, transfers the image, then
/// waits for `end_text`.
pub async fn load<S: AsyncRead + AsyncWrite + Unpin>(
    console: &mut Console<S>,
    step: &LoadImage,
    file: Outgoing,
    baud: u32,
    progress: &dyn Progress,
) -> Result<SendReport, StepError> {
    let wait_for = step.wait_for.as_deref().map(compile).transpose()?;
    let end_text = step.end_text.as_deref().map(compile).transpose()?;
    if let Some(pattern) = &wait_for {
        let what = format!("`{}` from the boot loader", pattern.as_str());
        progress.report(ProgressEvent::Note { kind: TaskKind::ConsoleWait, text: format!("waiting for {what}") });
        console.expect(&[pattern], step.wait_timeout.0, &what).await?;
    }
    if let Some(command) = &step.start_command {
        console.send(command.as_str(), "\r", SendOptions::default()).await?;
    }
    let mut options = SenderOptions::for_baud(step.protocol, baud);
    options.block_retries = step.block_retries.max(1);
    // The boot loader is already asking: no long wait for its first `C`.
    options.start_timeout = options.start_timeout.min(step.wait_timeout.0.max(Duration::from_secs(10)));
    let label = file.name.clone();
    let size = file.data.len();
    console.note(&format!("sending {label} ({size} bytes) by {:?}", step.protocol));
    let sender = Sender::new(file, options, tokio::time::Instant::now().into_std());
    let (stream, pending) = console.take_for_transfer();
    let result = transfer::send(stream, sender, &label, pending, progress).await;
    match result {
        Ok(report) => {
            console.note(&format!(
                "sent {} bytes in {:.1}s ({} retransmissions)",
                report.stats.acked_bytes,
                report.elapsed.as_secs_f64(),
                report.stats.retransmissions
            ));
            console.give_back(&report.leftover);
            if let Some(pattern) = &end_text {
                let what = format!("`{}` after the transfer", pattern.as_str());
                console.expect(&[pattern], step.end_timeout.0, &what).await?;
            }
            Ok(report)
        }
        Err(error) => {
            console.note(&format!("transfer failed: {error}"));
            Err(error.into())
        }
    }
}
