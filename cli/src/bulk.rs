//! `shippy create`: many consignments sent concurrently, with progress and a summary.

use std::{
    collections::BTreeMap,
    fmt,
    io::Write,
    time::{Duration, Instant},
};

use crate::args::CreateArgs;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    client::Services,
    input::{Origin, Parsed},
    output::{self, Format},
};

/// What became of a bulk create.
#[derive(Debug, Default)]
pub struct Summary {
    /// How many consignments were read, good or bad.
    pub total: usize,
    /// How many were created.
    pub created: usize,
    /// Why the others were not, each reason with how often it happened: a line that
    /// does not parse by its number and fault, a failed create by its
    /// [kind](shared::client::RequestError::kind) (`404 no vessel available for …`).
    pub failed: BTreeMap<String, usize>,
    /// How long it took.
    pub took: Duration,
}

impl Summary {
    /// How many were not created.
    pub fn failures(&self) -> usize {
        self.failed.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole milliseconds: `1s 204ms`, not nanoseconds.
        let took = Duration::from_millis(u64::try_from(self.took.as_millis()).unwrap_or(u64::MAX));
        write!(f, "created {} of {} consignments in {}", self.created, self.total, humantime::format_duration(took))?;
        if !self.failed.is_empty() {
            write!(f, "\nfailed {}:", self.failures())?;
            for (reason, count) in &self.failed {
                write!(f, "\n  {count:>6} × {reason}")?;
            }
        }
        Ok(())
    }
}

/// Creates every consignment, at most `concurrency` at a time, printing each
/// creation (JSON) or nothing but the summary (table); a progress bar on stderr
/// while it runs, when stderr is a terminal.
///
/// A single consignment (a file of one object) is created on its own: its reply
/// is printed as `create` always has, and its failure is the error returned.
///
/// # Panics
/// Never: the progress bar's template is fixed and valid.
pub async fn create(
    services: &Services,
    parsed: Vec<Parsed>,
    args: &CreateArgs,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<Summary> {
    // Each consignment's own idempotency key, kept across its retries.
    let key = |index: usize| match &args.idempotency_key {
        Some(key) if parsed.len() == 1 => key.clone(),
        Some(key) => format!("{key}-{index}"),
        None => uuid::Uuid::new_v4().to_string(),
    };
    if let [(Origin::Single, Ok(new))] = parsed.as_slice() {
        let created = services.create(new, &key(0), args.retry()).await?;
        match format {
            Format::Table => writeln!(out, "{}", output::created_line(&created))?,
            Format::Json => output::pretty(out, &created)?,
        }
        return Ok(Summary { total: 1, created: 1, ..Summary::default() });
    }

    let mut summary = Summary { total: parsed.len(), ..Summary::default() };
    let progress = ProgressBar::with_draw_target(Some(parsed.len() as u64), ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} consignments, {per_sec}, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let keys: Vec<String> = (0..parsed.len()).map(key).collect();
    let mut results = futures::stream::iter(parsed.into_iter().zip(keys))
        .map(|((origin, new), key)| async move {
            let new = new.map_err(|reason| format!("{origin}: {reason}"))?;
            // Counted by kind: the details of an error reply (figures, ids) vary.
            services.create(&new, &key, args.retry()).await.map_err(|error| error.kind())
        })
        .buffered(usize::from(args.concurrency));
    while let Some(result) = results.next().await {
        progress.inc(1);
        match result {
            Ok(created) => {
                summary.created += 1;
                if format == Format::Json {
                    progress.suspend(|| output::json_lines(out, std::slice::from_ref(&created)))?;
                }
            }
            Err(reason) => *summary.failed.entry(reason).or_default() += 1,
        }
    }
    progress.finish_and_clear();
    summary.took = started.elapsed();
    match format {
        // The summary is what a person came for; a script reads the JSON Lines.
        Format::Table => writeln!(out, "{summary}")?,
        Format::Json => eprintln!("{summary}"),
    }
    Ok(summary)
}
