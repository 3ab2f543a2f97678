//! An independent sender of kvruntime's `kv:distro:sys`: Hyperware's kv
//! types declared as process_lib declares them, and kvruntime's extensions
//! by the same serde rules, sent in three encodings through a harness that
//! relays to a live runtime (see `bridge.rs`).
//!
//! ```text
//! hyperware-kv-conformance --package NAME:PUBLISHER [--forms bin,array,json]
//!                          [--scenarios core,extensions]
//! hyperware-kv-conformance --golden protocol/golden_vectors.json
//! ```
//!
//! `--golden` checks the types on the golden vectors offline (see
//! `golden.rs`), with no harness.
//!
//! Every step's outcome is a report line (`{"kind": "step", ...}`); then one
//! `summary` line per form (steps served as PROTOCOL.md says, of all), a
//! `differs` line for each step whose answers differ across forms, and a
//! `verdict`. Exit status: 0 when every step of every form got its answer,
//! decoded into the sender's own types, the same in every form; 1 when not;
//! 2 on a usage or link error.

mod bridge;
mod extensions;
mod forms;
mod golden;
mod hyperware;
mod runner;
mod scenario;

use std::collections::BTreeMap;
use std::io;
use std::process::ExitCode;

use serde_json::json;

use bridge::Link;
use forms::Form;
use hyperware::plain::PackageId;
use runner::{Record, Runner};

struct Options {
    package: PackageId,
    forms: Vec<Form>,
    scenarios: Vec<String>,
}

const SCENARIOS: [&str; 2] = ["core", "extensions"];

fn parse_options() -> Result<Options, String> {
    let mut package = None;
    let mut forms = vec![Form::Bin];
    let mut scenarios: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--package" => {
                let text = value()?;
                let (name, publisher) = text
                    .split_once(':')
                    .ok_or_else(|| format!("--package {text}: expected NAME:PUBLISHER"))?;
                package = Some(PackageId {
                    package_name: name.to_string(),
                    publisher_node: publisher.to_string(),
                });
            }
            "--forms" => {
                forms = value()?
                    .split(',')
                    .map(|name| {
                        Form::parse(name)
                            .ok_or_else(|| format!("unknown form {name:?} (bin, array, json)"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--scenarios" => {
                scenarios = value()?.split(',').map(str::to_string).collect();
                if let Some(bad) = scenarios.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                    return Err(format!("unknown scenario {bad:?} (core, extensions)"));
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let package = package.ok_or("--package NAME:PUBLISHER is required")?;
    Ok(Options {
        package,
        forms,
        scenarios,
    })
}

fn run(options: &Options) -> io::Result<bool> {
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    let mut link = Link::new(stdin, stdout);
    let mut by_form: Vec<(Form, Vec<Record>)> = Vec::new();
    for &form in &options.forms {
        let mut runner = Runner::new(&mut link, form, options.package.clone());
        for scenario in &options.scenarios {
            match scenario.as_str() {
                "core" => scenario::core(&mut runner)?,
                _ => scenario::extensions(&mut runner)?,
            }
        }
        by_form.push((form, runner.records));
    }
    let mut all_ok = true;
    for (form, records) in &by_form {
        let failed: Vec<&str> = records
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.step.as_str())
            .collect();
        all_ok &= failed.is_empty();
        link.report(&json!({
            "kind": "summary",
            "form": form.name(),
            "served": records.len() - failed.len(),
            "steps": records.len(),
            "failed": failed,
        }))?;
    }
    // The same step in every form must get the same answer.
    if let Some((_, first)) = by_form.first() {
        for (index, record) in first.iter().enumerate() {
            let answers: BTreeMap<&str, &str> = by_form
                .iter()
                .filter_map(|(form, records)| {
                    records.get(index).map(|r| (form.name(), r.answer.as_str()))
                })
                .collect();
            if answers
                .values()
                .any(|answer| *answer != record.answer.as_str())
            {
                all_ok = false;
                link.report(&json!({
                    "kind": "differs",
                    "step": record.step,
                    "family": record.family,
                    "answers": answers,
                }))?;
            }
        }
    }
    link.report(&json!({"kind": "verdict", "ok": all_ok}))?;
    Ok(all_ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--golden") {
        return match args.get(1).map(|path| golden::run(path)) {
            Some(Ok(true)) => ExitCode::SUCCESS,
            Some(Ok(false)) => ExitCode::from(1),
            Some(Err(why)) => {
                eprintln!("hyperware-kv-conformance: {why}");
                ExitCode::from(2)
            }
            None => {
                eprintln!("hyperware-kv-conformance: --golden needs the vectors' path");
                ExitCode::from(2)
            }
        };
    }
    let options = match parse_options() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("hyperware-kv-conformance: {why}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("hyperware-kv-conformance: link to the harness failed: {error}");
            ExitCode::from(2)
        }
    }
}
