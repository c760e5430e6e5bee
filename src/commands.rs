//! The offline subcommands: `fields`, `rules validate`, `rules list`, `rules test`, `lint`, and the
//! rule loading that `run` shares with them (embedded defaults, then configured files).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::alert::chain::EmitAlerts;
use crate::config::RuleMatchingMode;
use crate::engine::Processor;
use crate::event::Event;
use crate::exit;
use crate::rule_files::read_rule_paths;
use crate::rules::defaults::default_sources;
use crate::rules::{self, LoadOptions, LoadOutcome, RuleMatching, RuleSet};

/// What to load: the embedded defaults (unless disabled), then `files` in order.
#[derive(Debug, Clone)]
pub struct RuleSelection {
    /// Extra files and directories.
    pub files: Vec<PathBuf>,
    /// Skip the embedded defaults.
    pub no_default_rules: bool,
    /// Unprovided fields are errors.
    pub strict: bool,
    /// First or all matching rules.
    pub rule_matching: RuleMatchingMode,
}

/// Loads the selected rules. Errors reading files are returned; rule errors are in the
/// outcome's diagnostics.
pub(crate) fn load_rules(selection: &RuleSelection) -> anyhow::Result<LoadOutcome> {
    let mut sources = if selection.no_default_rules {
        Vec::new()
    } else {
        default_sources()
    };
    sources.extend(read_rule_paths(&selection.files)?);
    let options = LoadOptions {
        strict: selection.strict,
        rule_matching: match selection.rule_matching {
            RuleMatchingMode::First => RuleMatching::First,
            RuleMatchingMode::All => RuleMatching::All,
        },
    };
    Ok(rules::load(&sources, &options))
}

/// Loads rules for `run` or `rules test`: warnings and skipped rules go to the log, errors
/// make the load fail with every diagnostic in the message.
pub(crate) fn load_ruleset_or_fail(selection: &RuleSelection) -> anyhow::Result<RuleSet> {
    let outcome = load_rules(selection)?;
    for warning in outcome.warnings() {
        tracing::warn!(file = %warning.file, line = warning.line, column = warning.column, "{}", warning.message);
    }
    for skipped in &outcome.skipped {
        tracing::warn!(rule = %skipped.name, reason = %skipped.reason, "Rule skipped.");
    }
    let errors: Vec<String> = outcome.errors().map(|d| d.to_string()).collect();
    match outcome.ruleset {
        Some(ruleset) if errors.is_empty() => Ok(ruleset),
        _ => anyhow::bail!(
            "the rules have {} error(s):\n{}",
            errors.len(),
            errors.join("\n")
        ),
    }
}

/// `tasksentry fields`.
pub fn fields(json: bool) -> anyhow::Result<u8> {
    let catalogue = rules::fields::catalogue();
    let mut stdout = std::io::stdout().lock();
    if json {
        let rows: Vec<serde_json::Value> = catalogue
            .iter()
            .map(|field| {
                serde_json::json!({
                    "name": field.name,
                    "type": field.ty.as_str(),
                    "argument": format!("{:?}", field.arg).to_lowercase(),
                    "events": field.provides.as_str(),
                    "description": field.desc,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut stdout, &rows)?;
        writeln!(stdout)?;
    } else {
        let width = catalogue.iter().map(|f| f.name.len()).max().unwrap_or(10);
        writeln!(
            stdout,
            "{:width$}  {:10}  {:12}  DESCRIPTION",
            "FIELD", "TYPE", "EVENTS"
        )?;
        for field in catalogue {
            let name = match field.arg {
                rules::fields::ArgKind::None => field.name.to_owned(),
                _ => format!("{}[...]", field.name),
            };
            writeln!(
                stdout,
                "{name:width$}  {:10}  {:12}  {}",
                field.ty.as_str(),
                field.provides.as_str(),
                field.desc,
                width = width + 5
            )?;
        }
    }
    Ok(exit::OK)
}

/// `tasksentry rules validate`.
pub fn rules_validate(selection: &RuleSelection) -> anyhow::Result<u8> {
    let outcome = load_rules(selection)?;
    let mut stdout = std::io::stdout().lock();
    for diagnostic in &outcome.diagnostics {
        writeln!(stdout, "{diagnostic}")?;
    }
    let n_errors = outcome.errors().count();
    let n_warnings = outcome.warnings().count();
    if let Some(ruleset) = &outcome.ruleset {
        let counts = ruleset.counts();
        writeln!(
            stdout,
            "{} rules loaded ({} enabled), {} lists, {} macros",
            counts.compiled, counts.enabled, counts.lists, counts.macros
        )?;
    }
    writeln!(stdout, "{} rules skipped", outcome.skipped.len())?;
    for skipped in &outcome.skipped {
        writeln!(stdout, "  skipped: {}: {}", skipped.name, skipped.reason)?;
    }
    writeln!(stdout, "{n_errors} errors, {n_warnings} warnings")?;
    Ok(if n_errors == 0 && outcome.ruleset.is_some() {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// `tasksentry rules list`.
pub fn rules_list(selection: &RuleSelection) -> anyhow::Result<u8> {
    let ruleset = load_ruleset_or_fail(selection)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "{:48}  {:13}  {:7}  {:24}  TAGS",
        "RULE", "PRIORITY", "ENABLED", "EVENT TYPES"
    )?;
    for rule in ruleset.rules() {
        let types = match &rule.event_types {
            Some(types) => types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
            None => "all".to_owned(),
        };
        writeln!(
            stdout,
            "{:48}  {:13}  {:7}  {:24}  {}",
            rule.name,
            rule.priority.as_str(),
            if rule.enabled { "yes" } else { "no" },
            types,
            rule.tags.join(",")
        )?;
    }
    Ok(exit::OK)
}

/// `tasksentry rules test`: replays a recording and prints the alerts, one JSON line each.
/// Lines that are not valid events are reported on stderr with their line number, and make
/// the exit code 1, but never stop the replay.
pub fn rules_test(selection: &RuleSelection, events: &Path, hostname: &str) -> anyhow::Result<u8> {
    let ruleset = load_ruleset_or_fail(selection)?;
    // The same alert stage as `run` (aggregation, budgets, redaction, with the default
    // settings), so that a replay reproduces the live alerts.
    let mut processor = EmitAlerts::new(ruleset, hostname.to_owned());
    let mut records = Vec::new();
    let reader: Box<dyn BufRead> = if events == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(events).with_context(|| format!("opening {}", events.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut bad_lines = 0u64;
    for (index, line) in reader.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", events.display()))?;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let event: Event = match serde_json::from_str(&text) {
            Ok(event) => event,
            Err(error) => {
                bad_lines += 1;
                eprintln!("{}:{}: not an event: {error}", events.display(), index + 1);
                continue;
            }
        };
        processor.process(&event, &mut records);
        for record in records.drain(..) {
            stdout.write_all(record.line.as_bytes())?;
            stdout.write_all(b"\n")?;
        }
    }
    processor.flush(&mut records);
    for record in records.drain(..) {
        stdout.write_all(record.line.as_bytes())?;
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(if bad_lines == 0 {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// `tasksentry profile build`: reads snapshots from every input, merges them and writes the
/// rules file. Inputs without any snapshot, and snapshots with parts missing, are reported on
/// stderr; no snapshot at all is a failure (exit code 1) and writes nothing.
pub fn profile_build(inputs: &[PathBuf], out: &Path, min_tasks: usize) -> anyhow::Result<u8> {
    use crate::profile::{build, snapshot};
    let mut parts = Vec::new();
    for input in inputs {
        let text = if input == Path::new("-") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
                .context("reading stdin")?;
            text
        } else {
            let bytes =
                std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let (found, problems) = snapshot::parts_in_text(&text);
        for problem in problems {
            eprintln!("{}: {problem}", input.display());
        }
        if found.is_empty() {
            eprintln!("{}: no profile snapshot", input.display());
        }
        parts.extend(found);
    }
    let (snapshots, problems) = snapshot::reassemble(parts);
    for problem in problems {
        eprintln!("{problem}");
    }
    if snapshots.is_empty() {
        anyhow::bail!("no complete profile snapshot in the inputs: nothing to build");
    }
    let profile = build::merge(&snapshots, min_tasks.max(1));
    let text = build::render(&profile);
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    let kept: usize = profile.containers.values().map(|c| c.entries.len()).sum();
    let dropped: usize = profile.containers.values().map(|c| c.dropped.len()).sum();
    eprintln!(
        "{}: {} container(s) from {} task(s), {kept} entries kept, {dropped} seen in fewer than {} task(s) left out",
        out.display(),
        profile.containers.len(),
        profile.tasks.len(),
        min_tasks.max(1)
    );
    Ok(exit::OK)
}

/// `tasksentry profile diff`: prints one line per entry the new profile adds (`+`) or drops
/// (`-`), then a count; exit code 0 either way.
pub fn profile_diff(old: &Path, new: &Path) -> anyhow::Result<u8> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let (old_text, new_text) = (read(old)?, read(new)?);
    let lines = crate::profile::build::diff(&old_text, &new_text);
    let mut stdout = std::io::stdout().lock();
    for line in &lines {
        writeln!(stdout, "{line}")?;
    }
    let added = lines.iter().filter(|l| l.starts_with('+')).count();
    writeln!(stdout, "{added} added, {} dropped", lines.len() - added)?;
    Ok(exit::OK)
}

/// This machine's host name, the default `hostname` of alerts.
pub fn default_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Reads at most one byte more than `lint` accepts, so that a huge file is refused without
/// being read whole.
fn read_lint_input(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let limit = u64::try_from(crate::lint::input::MAX_INPUT_BYTES).unwrap_or(u64::MAX) + 1;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `tasksentry lint`: reads the files, runs every check not skipped, prints the findings in the
/// chosen format on stdout. Exit 0 (nothing at or above `--fail-on`), 1 (findings) or 2
/// (an input that cannot be used, each one reported on stderr as `file:line:column: why`).
pub fn lint(args: &crate::cli::LintArgs) -> anyhow::Result<u8> {
    use crate::cli::LintFormat;
    use crate::lint::{self, InputFile, Role, report};
    let mut stdout = std::io::stdout().lock();
    if args.list_checks {
        for check in lint::CHECKS {
            writeln!(stdout, "{}\t{}\t{}", check.id, check.severity, check.why)?;
        }
        return Ok(exit::OK);
    }
    if let Some(unknown) = args.skip.iter().find(|id| lint::check(id).is_none()) {
        eprintln!(
            "tasksentry: lint: --skip {unknown}: no such check (see `tasksentry lint --list-checks`)"
        );
        return Ok(exit::USAGE);
    }
    let given = args
        .files
        .iter()
        .map(|p| (p, Role::Document))
        .chain(
            args.task_role_policy
                .iter()
                .map(|p| (p, Role::TaskRolePolicy)),
        )
        .chain(
            args.execution_role_policy
                .iter()
                .map(|p| (p, Role::ExecutionRolePolicy)),
        );
    let mut inputs = Vec::new();
    let mut unreadable = false;
    for (path, role) in given {
        match read_lint_input(path) {
            Ok(bytes) => inputs.push(InputFile {
                path: path.display().to_string(),
                bytes,
                role,
            }),
            Err(error) => {
                eprintln!("{}: {error}", path.display());
                unreadable = true;
            }
        }
    }
    if unreadable {
        return Ok(exit::INPUT);
    }
    let mut findings = match lint::lint(&inputs) {
        Ok(findings) => findings,
        Err(errors) => {
            for error in errors {
                eprintln!("{error}");
            }
            return Ok(exit::INPUT);
        }
    };
    findings.retain(|f| !args.skip.iter().any(|id| id == f.check.id));
    match args.format {
        LintFormat::Text => write!(
            stdout,
            "{}",
            report::text(&findings, inputs.len(), args.fail_on)
        )?,
        LintFormat::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&report::json(&findings, args.fail_on))?
        )?,
        LintFormat::Sarif => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&report::sarif(&findings))?
        )?,
    }
    Ok(if report::fails(&findings, args.fail_on) {
        exit::FAILURE
    } else {
        exit::OK
    })
}

/// `tasksentry sbom`: the inventory of a container root as CycloneDX JSON on stdout; what
/// could not be read is in the SBOM's metadata properties and, when the budget ran out, on
/// stderr.
pub fn sbom(args: &crate::cli::SbomArgs) -> anyhow::Result<u8> {
    use crate::image::{self, Limits, Root};
    if !args.root.is_dir() {
        eprintln!(
            "tasksentry: sbom: --root {}: not a directory",
            args.root.display()
        );
        return Ok(exit::USAGE);
    }
    let limits = Limits {
        max_files: args.max_files,
        max_bytes: args.max_bytes,
        max_file_bytes: args.max_file_bytes,
        max_archive_bytes: args.max_archive_bytes,
        ..Limits::default()
    };
    let root = Root::new(&args.root, limits);
    let inventory = image::inventory(&root);
    // Only the entries of this root's packages are kept of the database (a whole export would
    // take tens of megabytes).
    let vulndb = match &args.vulndb {
        Some(dir) => {
            match image::osv::VulnDb::load_for(dir, &image::osv::Wanted::of(&inventory.components))
            {
                Ok(db) => {
                    for note in &db.notes {
                        eprintln!("tasksentry: sbom: --vulndb: {note}");
                    }
                    Some(db)
                }
                Err(error) => {
                    eprintln!("tasksentry: sbom: --vulndb {}: {error}", dir.display());
                    return Ok(exit::USAGE);
                }
            }
        }
        None => None,
    };
    if let Some(budget) = inventory.truncated {
        eprintln!(
            "tasksentry: sbom: the {budget} budget ran out: the SBOM is incomplete (raise --max-{budget})"
        );
    }
    let crate::cli::SbomFormat::CyclonedxJson = args.format;
    let mut document = image::cyclonedx::sbom(&inventory, &args.root.display().to_string());
    if let (Some(db), Some(object)) = (&vulndb, document.as_object_mut()) {
        let findings = db.matches(&inventory.components, &inventory.distro);
        let in_use: Option<Vec<_>> = (!args.pid.is_empty()).then(|| {
            let used = image::inuse::used_paths(Path::new("/proc"), &args.pid, &root);
            findings
                .iter()
                .map(|f| image::inuse::in_use(&inventory.components[f.component], &root, &used))
                .collect()
        });
        object.insert(
            "vulnerabilities".into(),
            image::cyclonedx::vulnerabilities(&inventory, &findings, in_use.as_deref()),
        );
    }
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &document).context("writing the SBOM")?;
    writeln!(stdout)?;
    Ok(exit::OK)
}

/// `tasksentry secrets`: credentials in a container root, one JSON line each (`path`, `line`,
/// `kind`, `fingerprint`), never the value. Exit 1 when any is found.
pub fn secrets(args: &crate::cli::SecretsArgs) -> anyhow::Result<u8> {
    use crate::image::{Limits, Root, secrets};
    if !args.root.is_dir() {
        eprintln!(
            "tasksentry: secrets: --root {}: not a directory",
            args.root.display()
        );
        return Ok(exit::USAGE);
    }
    let root = Root::new(
        &args.root,
        Limits {
            max_files: args.max_files,
            max_bytes: args.max_bytes,
            ..Limits::default()
        },
    );
    let findings = secrets::scan(&root);
    if let Some(budget) = root.exhausted() {
        eprintln!(
            "tasksentry: secrets: the {budget} budget ran out: files after it were not scanned (raise --max-{budget})"
        );
    }
    let mut stdout = std::io::stdout().lock();
    for finding in &findings {
        let line = serde_json::json!({
            "path": finding.path,
            "line": finding.line,
            "kind": finding.kind,
            "fingerprint": finding.fingerprint,
        });
        writeln!(stdout, "{line}")?;
    }
    let mut env_findings = 0;
    for &pid in &args.pid {
        let environ = match std::fs::read(format!("/proc/{pid}/environ")) {
            Ok(environ) => environ,
            Err(error) => {
                eprintln!("tasksentry: secrets: --pid {pid}: /proc/{pid}/environ: {error}");
                continue;
            }
        };
        for finding in secrets::scan_environ(&environ) {
            env_findings += 1;
            let line = serde_json::json!({
                "pid": pid,
                "variable": finding.variable,
                "kind": finding.kind,
                "fingerprint": finding.fingerprint,
            });
            writeln!(stdout, "{line}")?;
        }
    }
    Ok(if findings.is_empty() && env_findings == 0 {
        exit::OK
    } else {
        exit::FAILURE
    })
}
