//! Command-line interface: clap structs for what the user typed, resolution into validated plans,
//! and output in human or JSON form. Logic a test would want to call lives in the library.

pub mod human;
pub mod list;
pub mod logging;
pub mod stdio;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::data::readers;
use crate::data::tags::{Decode, Scheme};
use crate::data::{jsonl, Dataset, ReadOutput};
use crate::metrics::{evaluate, EvalOptions, Protocol};
use crate::pipeline::backends::DefaultBackends;
use crate::pipeline::{DevicePreference, IoBindingPreference, OnError};
use crate::results::{RunDir, RunResults};
use crate::run::{RunPlan, RunRequest, ShardSpec};

use stdio::{is_std, read_canonical, CanonicalInput};

/// `-q` count: status lines and data warnings go to stderr only when it is 0.
static QUIET: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// A status or warning line on stderr, unless `-q`.
fn note(line: impl std::fmt::Display) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        eprintln!("{line}");
    }
}

/// Writes command output to stdout; a closed pipe (`| head`) ends quietly instead of panicking.
fn out(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match write!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Exit codes (documented in the README).
pub mod exit {
    pub const OK: i32 = 0;
    /// `compare` found a significant regression in a gated metric.
    pub const REGRESSION: i32 = 1;
    /// Usage or input error.
    pub const ERROR: i32 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "riveg-bench",
    version = crate::run::meta::VERSION_LINE,
    about = "Evaluation and benchmarking harness for grounded multimodal NER (RiVEG pipeline)",
    after_help = "Exit codes: 0 ok, 1 regression found by `compare`, 2 usage or input error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log lines on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Fewer log lines (-q errors only, -qq nothing but the exit code and output).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a dataset or prediction file into canonical JSONL.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Score predictions against gold (MNER, EEG, GMNER; FMNERG and SMNER when the data has them).
    Eval(EvalArgs),
    /// Run a suite: the RiVEG pipeline and its ablations, every variant scored and timed.
    Run(RunArgs),
    /// Combine the run directories of `run --shard K/N` into one run.
    Merge(MergeArgs),
    /// Serve a mock OpenAI-compatible LLM on loopback (dry runs of the reformulation stage).
    MockLlm(MockLlmArgs),
    /// Build synthetic data sets for demos and tests.
    #[command(subcommand)]
    Synth(SynthCommand),
    /// (Re)write a run directory's summary.md and figures.
    Report(ReportArgs),
    /// Compare two runs, saved baselines or published results; exit 1 on a gated regression.
    Compare(CompareArgs),
    /// List what names the other commands accept: suites, variants, baselines, formats, prompts.
    List(ListArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// e.g. `riveg-bench completions bash > ~/.local/share/bash-completion/completions/riveg-bench`
    Completions(CompletionsArgs),
    /// Mean, std, min, max and n of every metric over runs (seeds, shards, repeated sampling).
    Aggregate(AggregateArgs),
    /// The stage cache: size, entries per stage and age (stats), or remove old entries (prune).
    Cache(CacheArgs),
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// Stage cache folder (default, like `run`: the suite's with --suite, else .riveg-cache).
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Take the cache folder from this suite's settings.cache_dir.
    #[arg(long, global = true)]
    pub suite: Option<PathBuf>,
    /// Output format (default: human on a terminal, JSON otherwise).
    #[arg(long, value_enum, global = true)]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Size, entries per stage, oldest and newest entry.
    Stats,
    /// Remove entries older than DAYS and/or the oldest ones until the cache fits SIZE.
    Prune {
        /// Remove entries written more than DAYS days ago (0 or more; fractions allowed).
        // Hyphen values allowed so `-3` gets our "0 or more" message, not clap's.
        #[arg(long, value_name = "DAYS", allow_hyphen_values = true)]
        older_than: Option<String>,
        /// E.g. 500M, 2G (powers of 1024).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list.
    #[arg(value_enum)]
    pub what: list::Listing,
    /// The suite whose variants to list (default: the built-in suite).
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Output: human lines or JSON [default: human when stdout is a terminal, else json].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct AggregateArgs {
    /// Run directories (reports/<run-id>) or results.json files.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output: human tables or JSON [default: human when stdout is a terminal, else json].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Subcommand)]
pub enum SynthCommand {
    /// A clearly labelled SYNTHETIC SMNER set: masks inscribed in the GMNER boxes (seeded).
    Smner {
        /// Gold canonical JSONL with boxes (e.g. from `import gmner`; `-`: stdin).
        #[arg(long)]
        gold: PathBuf,
        /// Seed of the mask generator: the same seed gives the same masks on every platform.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Image size HxW for every mask (default: each image sized from its boxes).
        #[arg(long, value_parser = parse_size)]
        size: Option<[u32; 2]>,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn parse_size(s: &str) -> Result<[u32; 2], String> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .ok_or("expected HxW, e.g. 480x640")?;
    Ok([
        h.trim().parse().map_err(|_| "height is not a number")?,
        w.trim().parse().map_err(|_| "width is not a number")?,
    ])
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory (reports/<run-id>).
    pub run_dir: PathBuf,
    /// criterion's output folder (target/criterion) for the throughput/latency figure.
    #[arg(long)]
    pub criterion_dir: Option<PathBuf>,
    /// Also print the main results table on stdout: md, csv or latex (booktabs).
    #[arg(long)]
    pub format: Option<crate::report::export::TableFormat>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run directory, saved baseline name, or published baseline (`published:SLUG` or a slug such
    /// as `riveg-roberta-dagger`; see baselines/README.md).
    pub base: String,
    /// Same kinds as BASE.
    pub new: String,
    /// Compare and gate only these variants (repeatable; default: every variant on both sides).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// Entity keying: riveg (RiVEG's scorer: type + text) or span (token offsets).
    #[arg(long, value_enum, default_value = "riveg")]
    pub protocol: Protocol,
    /// Paired-bootstrap resamples over tweets.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Seed of the paired bootstrap (same seed, same intervals, whatever the thread count).
    #[arg(long, default_value_t = crate::compare::DEFAULT_SEED)]
    pub seed: u64,
    /// Significance level (the CI level is 1 - alpha).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Smallest change, in percentage points, that counts as Improved/Regressed.
    #[arg(long, default_value_t = 0.0)]
    pub threshold: f64,
    /// Gated metrics (`task.metric`, e.g. gmner.f1, mner.precision); repeatable. Default:
    /// gmner.f1, except against a published row without --variant (nothing gated).
    #[arg(long = "gate")]
    pub gates: Vec<String>,
    /// Also write compare.md, compare.json and compare_deltas.png/.svg into this folder.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Output: human tables or JSON [default: human when stdout is a terminal, else json].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct MockLlmArgs {
    /// Port on 127.0.0.1 (0: pick a free one and print it).
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// echo | fail:STATUS:TIMES | always-fail:STATUS | delay:MS | malformed | empty | empty-content
    /// | detail:STATUS | echo-auth | echo-auth-error:STATUS | no-vision | content:TEXT
    #[arg(long, default_value = "echo")]
    pub behaviour: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Suite file (suites/*.toml); default: the built-in suite (replays RiVEG's released outputs).
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// Run directory; default reports/<suite>-<timestamp>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run only slice K of N (1-based) of the tweets; combine with `merge`.
    #[arg(long)]
    pub shard: Option<ShardSpec>,
    /// Execution provider for ONNX stages: auto (CUDA when it loads, else CPU), cuda or cpu.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DevicePreference,
    /// Stop at the first failing item (fail) or record it and go on (skip); default: the suite's.
    #[arg(long, value_enum)]
    pub on_error: Option<OnError>,
    /// Stage cache folder (default: the suite's, else .riveg-cache).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Keep the stage cache in memory only.
    #[arg(long)]
    pub no_cache: bool,
    /// Run only these variants of the suite (repeatable; default: all).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// The ONNX Runtime shared library (default: $ORT_DYLIB_PATH, else the one in .venv).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
    /// Intra-op threads per ONNX session (default: the suite's [runtime] threads, else one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Whether idle ONNX Runtime threads spin (default: the suite's [runtime] spinning, else false).
    #[arg(long)]
    pub spinning: Option<bool>,
    /// ONNX Runtime I/O binding: auto (on for CUDA sessions: held tensors stay in device
    /// memory), on (any provider), off (default: the suite's [runtime] io_binding, else auto).
    #[arg(long, value_enum)]
    pub io_binding: Option<IoBindingPreference>,
    /// Tweets per tagger batch; LLM requests of a few batches are in flight together (default:
    /// the suite's [runtime] batch, else 32; 1: one tagger call per tweet).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Images (tweets) per VE/VG run, for models exported with image_index (default: the
    /// suite's [runtime] image_batch, else 8 or --batch if smaller; 1: one run per tweet).
    #[arg(long)]
    pub image_batch: Option<usize>,
    /// Output: human tables or JSON [default: human when stdout is a terminal, else json].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Save this run as a named baseline (baselines/saved/NAME, or $RIVEG_BENCH_BASELINE_DIR).
    #[arg(long)]
    pub save_baseline: Option<String>,
    /// Compare this run with a saved baseline and exit 1 if a gated metric regressed.
    #[arg(long)]
    pub baseline: Option<String>,
    /// criterion's output folder for the report's throughput/latency figure.
    #[arg(long)]
    pub criterion_dir: Option<PathBuf>,
    /// Score every variant like a published scorer, quirks included (overrides the suite's
    /// `settings.compat`; merge keeps it).
    #[arg(long, value_enum)]
    pub compat: Option<crate::metrics::Compat>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard run directories (one per K of K/N).
    #[arg(required = true)]
    pub shard_dirs: Vec<PathBuf>,
    /// The merged run directory to create (must not exist yet, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Output: human tables or JSON [default: human when stdout is a terminal, else json].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// The width human output must fit: `$COLUMNS` when set (tests, `COLUMNS=80 riveg-bench ...`),
/// else the terminal's, else unlimited (a pipe or file).
fn terminal_columns() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c > 0)
        .or_else(|| {
            console::Term::stdout()
                .size_checked()
                .map(|(_, w)| w as usize)
        })
        .unwrap_or(usize::MAX)
}

/// `--format` default: human on a terminal, JSON otherwise.
pub fn resolve_format(f: Option<OutputFormat>) -> OutputFormat {
    f.unwrap_or(if std::io::stdout().is_terminal() {
        OutputFormat::Human
    } else {
        OutputFormat::Json
    })
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Twitter-GMNER v1 / v2.0 (txt/{split}.txt + xml/).
    Gmner {
        /// The dataset folder (holds txt/ and xml/; see README, "Data").
        #[arg(long)]
        dataset: PathBuf,
        /// Which split to read: txt/<SPLIT>.txt (train, dev or test).
        #[arg(long, default_value = "test")]
        split: String,
        /// Chunk decoding: seqeval's default (lenient) or strict mode (IOB2 / IOBES).
        #[arg(long, value_enum, default_value = "default")]
        decode: Decode,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Twitter-FMNERG (txt_fine/{split}.txt), boxes linked from a GMNER v2.0 folder.
    Fmnerg {
        /// The dataset folder (holds txt_fine/; see README, "Data").
        #[arg(long)]
        dataset: PathBuf,
        /// Which split to read: txt_fine/<SPLIT>.txt (train, dev or test).
        #[arg(long, default_value = "test")]
        split: String,
        /// A Twitter-GMNER v2.0 folder whose xml/ gives the boxes.
        #[arg(long)]
        boxes_from: Option<PathBuf>,
        /// Chunk decoding: seqeval's default (lenient) or strict mode (IOB2 / IOBES).
        #[arg(long, value_enum, default_value = "default")]
        decode: Decode,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// CoNLL-style predictions: IMGID lines + token<TAB>tag (or token<TAB>coarse<TAB>fine).
    Conll {
        /// The CoNLL-style file.
        file: PathBuf,
        /// Tagging scheme of the tag column (auto: BIOES when any S-/E- tag appears, else BIO).
        #[arg(long, value_enum, default_value = "auto")]
        scheme: Scheme,
        /// Chunk decoding: seqeval's default (lenient) or strict mode (IOB2 / IOBES).
        #[arg(long, value_enum, default_value = "default")]
        decode: Decode,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// AdaSeq output: token<TAB>gold<TAB>pred (BIOES), text after <EOS> dropped.
    Adaseq {
        /// The AdaSeq prediction file.
        file: PathBuf,
        /// Canonical JSONL of the same split: gives tweet ids (tokens must agree; `-`: stdin).
        #[arg(long)]
        ids_from: Option<PathBuf>,
        /// Also write the file's gold column as canonical JSONL (`-`: stdout, if -o is a file).
        #[arg(long)]
        gold_out: Option<PathBuf>,
        /// Chunk decoding: seqeval's default (lenient) or strict mode (IOB2 / IOBES).
        #[arg(long, value_enum, default_value = "default")]
        decode: Decode,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// SMNER masks (LabelMe-style per-image JSON folder, or COCO annotation JSON) joined to a
    /// GMNER-style text dataset: a mask attaches to the entity whose text equals its label.
    Smner {
        /// The text side: canonical JSONL (e.g. from `import gmner`; `-`: stdin).
        #[arg(long)]
        text: PathBuf,
        /// A folder of `<image id>.json` LabelMe files.
        #[arg(long, conflicts_with = "coco", required_unless_present = "coco")]
        labelme: Option<PathBuf>,
        /// A COCO-style annotation JSON.
        #[arg(long)]
        coco: Option<PathBuf>,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// RiVEG gold labels (GMNER_finall_label.txt).
    RivegLabels {
        /// RiVEG's GMNER_finall_label.txt (or a file of the same format).
        file: PathBuf,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// RiVEG VE output (OFAVE_to_OFAREC*.txt), with OFA REC boxes when given.
    RivegOfa {
        /// RiVEG's OFAVE_to_OFAREC*.txt (or a file of the same format).
        file: PathBuf,
        /// OFA REC output: [{"uniq_id": ..., "box": [x1,y1,x2,y2]}], one per VE-positive line.
        #[arg(long)]
        boxes: Option<PathBuf>,
        /// Output canonical JSONL file (`-`: stdout).
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Gold, canonical JSONL (see `import`; `-`: stdin).
    #[arg(long)]
    pub gold: PathBuf,
    /// Predictions, canonical JSONL (`-`: stdin).
    #[arg(long)]
    pub pred: PathBuf,
    /// Entity keying: riveg (RiVEG's scorer: type + text) or span (token offsets).
    #[arg(long, value_enum, default_value = "riveg")]
    pub protocol: Protocol,
    /// Box IoU needed for a grounded match.
    #[arg(long = "iou", default_value_t = 0.5)]
    pub iou_threshold: f64,
    /// Mask IoU needed for an SMNER match.
    #[arg(long = "mask-iou", default_value_t = 0.5)]
    pub mask_iou_threshold: f64,
    /// Reproduce a published scorer, quirks included (replaces --protocol's keying).
    #[arg(long, value_enum)]
    pub compat: Option<crate::metrics::Compat>,
    /// Write one row per gold and predicted entity (outcome, pairing, IoU) to this .csv file.
    #[arg(long)]
    pub outcomes: Option<PathBuf>,
    /// Output: human tables or JSON [default: human when stdout is a terminal, else json].
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Save this evaluation as a named baseline (one variant, `eval`), for `compare`.
    #[arg(long)]
    pub save_baseline: Option<String>,
}

/// Runs a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    logging::init(cli.verbose, cli.quiet);
    QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    match cli.command {
        Command::Import(cmd) => import(cmd),
        Command::Eval(args) => eval(args),
        Command::Aggregate(args) => {
            let a = crate::metrics::aggregate::aggregate_dirs(&args.runs)?;
            match resolve_format(args.format) {
                OutputFormat::Json => out(format!("{}\n", serde_json::to_string_pretty(&a)?))?,
                OutputFormat::Human => out(crate::metrics::aggregate::render_aggregate(&a))?,
            }
            Ok(exit::OK)
        }
        Command::Run(args) => run_cmd(args),
        Command::Merge(args) => merge_cmd(args),
        Command::Synth(SynthCommand::Smner {
            gold,
            seed,
            size,
            output,
        }) => {
            let g = read_canonical(&gold)?.dataset;
            let synth = crate::data::synth::synth_smner(&g, seed, size)?;
            note(crate::data::synth::SYNTHETIC_SMNER_NOTE);
            write_output(&synth, &output)?;
            Ok(exit::OK)
        }
        Command::Report(args) => {
            let run_dir = RunDir::open(&args.run_dir);
            let results = run_dir.load_results_with_samples()?;
            let written = write_report(&run_dir, &results, args.criterion_dir.clone())?;
            for p in written {
                note(format!("wrote {}", p.display()));
            }
            if let Some(f) = args.format {
                let sel = crate::report::BaselineSelection::default();
                out(crate::report::render_main_table(&results, &sel, f)?)?;
            }
            Ok(exit::OK)
        }
        Command::Compare(args) => compare_cmd(args),
        Command::Cache(args) => cache_cmd(args),
        Command::List(args) => {
            let entries = list::list(args.what, args.suite.as_deref())?;
            match resolve_format(args.format) {
                OutputFormat::Json => {
                    out(format!("{}\n", serde_json::to_string_pretty(&entries)?))?
                }
                OutputFormat::Human => out(list::render_human(&entries))?,
            }
            Ok(exit::OK)
        }
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(
                args.shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "riveg-bench",
                &mut script,
            );
            out(String::from_utf8_lossy(&script))?;
            Ok(exit::OK)
        }
        Command::MockLlm(args) => {
            let behaviour: crate::llm::Behaviour = args
                .behaviour
                .parse()
                .map_err(|e| anyhow::anyhow!("--behaviour {:?}: {e}", args.behaviour))?;
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
            crate::llm::serve_forever(addr, behaviour)?;
            Ok(exit::OK)
        }
    }
}

fn cache_cmd(args: CacheArgs) -> anyhow::Result<i32> {
    use crate::pipeline::cache_admin as admin;
    let dir = match (args.cache_dir, &args.suite) {
        (Some(d), _) => Some(d),
        (None, Some(s)) => crate::run::suite::Suite::load(s)?.file.settings.cache_dir,
        (None, None) => None,
    }
    .unwrap_or_else(|| PathBuf::from(".riveg-cache"));
    let json = matches!(resolve_format(args.format), OutputFormat::Json);
    let text = match args.action {
        CacheAction::Stats => {
            let s = admin::stats(&dir)?;
            match json {
                true => serde_json::to_string_pretty(&s)?,
                false => human::render_cache_stats(&s),
            }
        }
        CacheAction::Prune {
            older_than,
            max_size,
        } => {
            let limits = admin::PruneLimits {
                older_than_days: older_than.as_deref().map(admin::parse_days).transpose()?,
                max_bytes: max_size.as_deref().map(admin::parse_size).transpose()?,
            };
            let r = admin::prune(&dir, limits)?;
            match json {
                true => serde_json::to_string_pretty(&r)?,
                false => human::render_prune(&r),
            }
        }
    };
    out(format!("{}\n", text.trim_end()))?;
    Ok(exit::OK)
}

fn print_warnings(out: &ReadOutput) {
    for w in &out.warnings {
        note(format!("{w}"));
    }
}

fn write_output(dataset: &Dataset, path: &Path) -> anyhow::Result<()> {
    stdio::write_canonical(dataset, path)?;
    note(format!(
        "wrote {} tweets, {} entities to {}",
        dataset.tweets.len(),
        dataset.entity_count(),
        if is_std(path) {
            "stdout".into()
        } else {
            path.display().to_string()
        }
    ));
    Ok(())
}

/// The file arguments of an import that must be real files or folders (readers reopen them).
fn import_inputs(cmd: &ImportCommand) -> Vec<(&Path, &'static str)> {
    match cmd {
        ImportCommand::Gmner { dataset, .. } => vec![(dataset, "--dataset")],
        ImportCommand::Fmnerg {
            dataset,
            boxes_from,
            ..
        } => [Some((dataset.as_path(), "--dataset"))]
            .into_iter()
            .chain([boxes_from.as_deref().map(|b| (b, "--boxes-from"))])
            .flatten()
            .collect(),
        ImportCommand::Conll { file, .. }
        | ImportCommand::Adaseq { file, .. }
        | ImportCommand::RivegLabels { file, .. } => vec![(file, "FILE")],
        ImportCommand::Smner { labelme, coco, .. } => labelme
            .as_deref()
            .map(|p| (p, "--labelme"))
            .into_iter()
            .chain(coco.as_deref().map(|p| (p, "--coco")))
            .collect(),
        ImportCommand::RivegOfa { file, boxes, .. } => [Some((file.as_path(), "FILE"))]
            .into_iter()
            .chain([boxes.as_deref().map(|b| (b, "--boxes"))])
            .flatten()
            .collect(),
    }
}

fn import(cmd: ImportCommand) -> anyhow::Result<i32> {
    for (path, what) in import_inputs(&cmd) {
        stdio::require_file(path, what)?;
    }
    let (out, path) = match cmd {
        ImportCommand::Gmner {
            dataset,
            split,
            decode,
            output,
        } => (
            readers::gmner::read_gmner_decoded(&dataset, &split, decode)?,
            output,
        ),
        ImportCommand::Fmnerg {
            dataset,
            split,
            boxes_from,
            decode,
            output,
        } => (
            readers::fmnerg::read_fmnerg_decoded(&dataset, &split, boxes_from.as_deref(), decode)?,
            output,
        ),
        ImportCommand::Conll {
            file,
            scheme,
            decode,
            output,
        } => (
            readers::conll::read_conll_decoded(&file, scheme, decode)?,
            output,
        ),
        ImportCommand::Adaseq {
            file,
            ids_from,
            gold_out,
            decode,
            output,
        } => {
            if gold_out.as_deref().is_some_and(is_std) && is_std(&output) {
                anyhow::bail!("--gold-out and -o cannot both be `-` (stdout)\n  hint: write one of them to a file");
            }
            let ids = ids_from
                .as_deref()
                .map(|p| read_canonical(p).map(|i| i.dataset))
                .transpose()?;
            let ada = readers::adaseq::read_adaseq_decoded(&file, ids.as_ref(), decode)?;
            if let Some(g) = gold_out {
                write_output(&ada.gold, &g)?;
            }
            (
                ReadOutput {
                    dataset: ada.pred,
                    warnings: Vec::new(),
                },
                output,
            )
        }
        ImportCommand::Smner {
            text,
            labelme,
            coco,
            output,
        } => {
            let text_ds = read_canonical(&text)?.dataset;
            let read = match (labelme, coco) {
                (Some(dir), _) => readers::smner::read_labelme_dir(&dir, &text_ds)?,
                (None, Some(file)) => readers::smner::read_coco_json(&file, &text_ds)?,
                (None, None) => anyhow::bail!("give --labelme DIR or --coco FILE"),
            };
            for w in &read.warnings {
                note(format!("warning: {w}"));
            }
            (
                ReadOutput {
                    dataset: read.dataset,
                    warnings: Vec::new(),
                },
                output,
            )
        }
        ImportCommand::RivegLabels { file, output } => {
            (readers::riveg::read_riveg_labels(&file)?, output)
        }
        ImportCommand::RivegOfa {
            file,
            boxes,
            output,
        } => (
            readers::riveg::read_riveg_ofa(&file, boxes.as_deref())?,
            output,
        ),
    };
    print_warnings(&out);
    write_output(&out.dataset, &path)?;
    Ok(exit::OK)
}

fn eval(args: EvalArgs) -> anyhow::Result<i32> {
    use crate::run::suite::Threshold;
    for (name, value) in [
        ("--iou", args.iou_threshold),
        ("--mask-iou", args.mask_iou_threshold),
    ] {
        Threshold::Iou
            .check(name, value)
            .map_err(|(what, hint)| anyhow::anyhow!("{what}\n  hint: {hint}"))?;
    }
    if is_std(&args.gold) && is_std(&args.pred) {
        anyhow::bail!(
            "--gold and --pred cannot both be `-` (stdin)\n  hint: pipe one of them and give the other as a file"
        );
    }
    let gold_in = read_canonical(&args.gold)?;
    let pred_in = read_canonical(&args.pred)?;
    let (gold, pred) = (&gold_in.dataset, &pred_in.dataset);
    if let Some(w) = jsonl::swapped_roles_warning(gold, &args.gold, pred, &args.pred) {
        note(w);
    }
    warn_unaligned(gold, pred, &args.pred);
    let opts = EvalOptions {
        protocol: args.protocol,
        iou_threshold: args.iou_threshold,
        mask_iou_threshold: args.mask_iou_threshold,
        compat: args.compat,
    };
    let report = evaluate(gold, pred, &opts).map_err(|e| {
        anyhow::anyhow!(
            "cannot score {} against {} with the {} protocol: {e}\n  hint: use --protocol riveg, or import predictions that carry token offsets",
            args.pred.display(),
            args.gold.display(),
            args.compat.map_or(args.protocol, crate::metrics::Compat::protocol).name()
        )
    })?;
    match resolve_format(args.format) {
        OutputFormat::Json => out(format!("{}\n", serde_json::to_string_pretty(&report)?))?,
        OutputFormat::Human => out(human::render_eval(&report))?,
    }
    if let Some(path) = &args.outcomes {
        let n = crate::metrics::outcomes::write_outcomes(gold, pred, &opts, path)?;
        note(format!("wrote {n} entity outcomes to {}", path.display()));
    }
    if let Some(name) = &args.save_baseline {
        let dir = save_eval_baseline(&gold_in, &pred_in, &opts, &args, name)?;
        note(format!("saved baseline {name:?} in {}", dir.display()));
    }
    Ok(exit::OK)
}

/// Saves an `eval` as a one-variant run (named `eval`) under the baseline store.
fn save_eval_baseline(
    gold: &CanonicalInput,
    pred: &CanonicalInput,
    opts: &EvalOptions,
    args: &EvalArgs,
    name: &str,
) -> anyhow::Result<PathBuf> {
    let (mut results, per_tweet) = crate::run::eval_run(
        &gold.dataset,
        &pred.dataset,
        opts,
        format!(
            "eval of {} against {}",
            args.pred.display(),
            args.gold.display()
        ),
        args.gold.display().to_string(),
        format!("eval-{name}"),
    );
    // Both inputs, keyed as given (`-` for stdin): the data a later comparison must match.
    results.meta.data_hashes = [(&args.gold, gold), (&args.pred, pred)]
        .into_iter()
        .map(|(p, input)| Ok((p.display().to_string(), input.sha256(p)?)))
        .collect::<anyhow::Result<_>>()?;
    Ok(crate::compare::saved::save_results(
        name,
        &results,
        &per_tweet,
        &format!("eval --pred {}", args.pred.display()),
    )?)
}

/// Warns when predicted tweets have ids the gold lacks: their entities all count as spurious, and
/// a mismatch usually means the files use different ids (e.g. AdaSeq's `#N` without --ids-from).
fn warn_unaligned(gold: &Dataset, pred: &Dataset, pred_path: &Path) {
    let ids: std::collections::HashSet<&str> = gold.tweets.iter().map(|t| t.id.as_str()).collect();
    let unknown: Vec<&str> = pred
        .tweets
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| !ids.contains(id))
        .collect();
    if !unknown.is_empty() {
        note(format!(
            "warning: {}: {} of {} predicted tweets have ids not in the gold (first: {:?}); their entities count as spurious\n  hint: import both sides with the same ids (e.g. `import adaseq --ids-from gold.jsonl`)",
            pred_path.display(),
            unknown.len(),
            pred.tweets.len(),
            unknown[0]
        ));
    }
}

fn write_report(
    run_dir: &RunDir,
    results: &RunResults,
    criterion_dir: Option<PathBuf>,
) -> anyhow::Result<Vec<PathBuf>> {
    let opts = crate::report::ReportOptions {
        criterion_dir,
        ..Default::default()
    };
    let files = crate::report::render_run_report(results, &opts)?;
    Ok(run_dir.write_files(files)?)
}

fn compare_cmd(args: CompareArgs) -> anyhow::Result<i32> {
    use crate::compare::{compare, render, CompareOptions, Side};
    let base = Side::resolve(&args.base)?;
    let new = Side::resolve(&args.new)?;
    let opts = CompareOptions {
        variants: args.variants.clone(),
        protocol: args.protocol,
        samples: args.samples,
        seed: args.seed,
        alpha: args.alpha,
        threshold: args.threshold / 100.0,
        gated: args.gates.clone(),
    };
    let c = compare(&base, &new, &opts)?;
    match resolve_format(args.format) {
        OutputFormat::Json => out(format!("{}\n", render::render_json(&c)))?,
        OutputFormat::Human => {
            // Fit the terminal: one metric per line where a table would wrap.
            out(render::render_human_fit(&c, terminal_columns()))?
        }
    }
    if let Some(dir) = &args.report {
        for p in crate::report::write_compare_report(dir, &c, 1200)? {
            note(format!("wrote {}", p.display()));
        }
    }
    Ok(c.exit_code)
}

fn print_results(
    results: &RunResults,
    run_dir: &Path,
    format: Option<OutputFormat>,
) -> anyhow::Result<()> {
    match resolve_format(format) {
        OutputFormat::Json => {
            // results.json plus where it lies.
            let mut value = serde_json::to_value(results)?;
            if let Some(map) = value.as_object_mut() {
                map.insert(
                    "run_dir".into(),
                    serde_json::Value::String(run_dir.display().to_string()),
                );
            }
            out(format!("{}\n", serde_json::to_string_pretty(&value)?))?
        }
        OutputFormat::Human => {
            out(human::render_run_fit(results, terminal_columns()))?;
            out(format!("run directory: {}\n", run_dir.display()))?;
        }
    }
    Ok(())
}

fn run_cmd(args: RunArgs) -> anyhow::Result<i32> {
    let plan = RunPlan::resolve(RunRequest {
        suite: args.suite.clone(),
        variants: args.variants.clone(),
        out_dir: args.out.clone(),
        shard: args.shard,
        device: args.device,
        on_error: args.on_error,
        cache_dir: args.cache_dir.clone(),
        no_disk_cache: args.no_cache,
        ort_library: args.ort_lib.clone(),
        progress: true,
        criterion_dir: args.criterion_dir.clone(),
        threads: args.threads,
        spinning: args.spinning,
        batch: args.batch,
        image_batch: args.image_batch,
        io_binding: args.io_binding,
        compat: args.compat,
    })?;
    note(format!(
        "running suite {:?} ({}), {} variants",
        plan.suite.file.name,
        plan.suite.origin,
        plan.suite.file.variants.len()
    ));
    let mut backends = DefaultBackends::new(plan.backend_config());
    let out = crate::run::run_plan(&plan, &mut backends)?;
    for w in &out.warnings {
        note(format!("{w}"));
    }
    print_results(&out.results, out.run_dir.path(), args.format)?;
    for line in out.results.skip_summary() {
        note(format!("warning: {line}"));
    }
    if let Some(v) = out.results.all_skipped_variants().first() {
        anyhow::bail!(
            "variant {} skipped every tweet ({} of {}): its scores measure nothing\n  hint: the \
             first error is in {}/results.json (skipped_items); run with --on-error fail to stop at it",
            v.name,
            v.skipped,
            v.tweets,
            out.run_dir.path().display()
        );
    }
    if let Some(name) = &args.save_baseline {
        // From the run held in memory: the same bytes `run` just wrote, not read back.
        let dir = crate::compare::saved::save_results(
            name,
            &out.results,
            &out.per_tweet,
            &out.run_dir.path().display().to_string(),
        )?;
        note(format!("saved baseline {name:?} in {}", dir.display()));
    }
    if let Some(name) = &args.baseline {
        use crate::compare::{compare, render, CompareOptions, Side};
        let base = Side::saved(name)?;
        let new = Side::from_results(out.run_dir.path(), out.results, out.per_tweet);
        let c = compare(&base, &new, &CompareOptions::default())?;
        eprint!("{}", render::render_human(&c));
        return Ok(c.exit_code);
    }
    Ok(exit::OK)
}

fn merge_cmd(args: MergeArgs) -> anyhow::Result<i32> {
    let merged = crate::run::merge::merge_shards(&args.shard_dirs, &args.out)?;
    print_results(&merged.results, &args.out, args.format)?;
    Ok(exit::OK)
}

/// The error text for people: the error and its causes, each cause once (our errors already
/// embed their source in their message, so anyhow's `{:#}` chain would print it twice).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if !text.contains(&msg) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&msg);
        }
    }
    text
}
